package loadgen

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH   = 980, 420
	panelW, panelH   = 380, 290
	panelTop         = 70
	leftPanel        = 90
	rightPanel       = 580
	chartTickLength  = 4
	chartFontFamily  = "sans-serif"
	chartLegendWidth = 150
)

var seriesColors = map[string]string{
	"hub":               "#1f77b4",
	"hub (node client)": "#9467bd",
	"relay":             "#ff7f0e",
	"direct":            "#2ca02c",
	"plain":             "#d62728",
}

// WriteChart writes an SVG chart of the report's runs against the number of
// clients: throughput (messages per second) on the left, p50 (solid) and
// p99 (dashed) latency on a logarithmic scale on the right, one colour per
// target. It is plain SVG built from strings.
func (rep *Report) WriteChart(w io.Writer) error {
	byTarget := map[string][]*Result{}
	var targets []string
	var xs []int
	for _, r := range rep.Runs {
		if r.Idle != nil {
			continue
		}
		l := r.Label()
		if _, ok := byTarget[l]; !ok {
			targets = append(targets, l)
		}
		byTarget[l] = append(byTarget[l], r)
		if !slices.Contains(xs, r.Clients) {
			xs = append(xs, r.Clients)
		}
	}
	if len(xs) == 0 {
		return fmt.Errorf("loadgen: nothing to chart")
	}
	slices.Sort(xs)
	for _, t := range targets {
		slices.SortFunc(byTarget[t], func(a, b *Result) int { return a.Clients - b.Clients })
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="12">`+"\n",
		chartW, chartH, chartW, chartH, chartFontFamily)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	r0 := rep.Runs[0]
	m := rep.Machine
	title := fmt.Sprintf("ockamhub bench %s: %d-byte payloads, %d in flight per client; %d CPUs (%s), %s",
		rep.Scenario, r0.Size, r0.Inflight, m.NumCPU, m.CPUModel, m.GoVersion)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", 20, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" fill="#555">hub %s; relay = plain Go io.Copy hop; direct = no hop; plain = plain Go frame server. Clients and hub on the same machine.</text>`+"\n", 20, html.EscapeString(rep.Hub))

	// x positions: evenly spaced on a log2 scale of the client counts.
	lx := func(c int) float64 { return math.Log2(float64(c)) }
	x0, x1 := lx(xs[0]), lx(xs[len(xs)-1])
	xpos := func(left float64, c int) float64 {
		if x1 == x0 {
			return left + panelW/2
		}
		return left + 10 + (lx(c)-x0)/(x1-x0)*(panelW-20)
	}

	// Throughput panel, linear from 0.
	var maxT float64
	for _, r := range rep.Runs {
		maxT = max(maxT, r.MsgsPerSec)
	}
	tTicks := niceTicks(0, maxT, 5)
	tTop := tTicks[len(tTicks)-1]
	ty := func(v float64) float64 { return panelTop + panelH - v/tTop*panelH }
	rep.axes(&b, leftPanel, "messages per second", "clients", xs, xpos)
	for _, v := range tTicks {
		y := ty(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", leftPanel, y, leftPanel+panelW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", leftPanel-6, y+4, shortNumber(v))
	}
	for _, t := range targets {
		var pts []string
		for _, r := range byTarget[t] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xpos(leftPanel, r.Clients), ty(r.MsgsPerSec)))
		}
		polyline(&b, pts, seriesColors[t], "")
	}

	// Latency panel, log scale.
	lo, hi := math.Inf(1), 0.0
	for _, r := range rep.Runs {
		for _, v := range []float64{r.Latency.P50, r.Latency.P99} {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	dlo, dhi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dhi == dlo {
		dhi++
	}
	ly := func(v float64) float64 {
		return panelTop + panelH - (math.Log10(max(v, 1e-9))-dlo)/(dhi-dlo)*panelH
	}
	rep.axes(&b, rightPanel, "latency (p50 solid, p99 dashed)", "clients", xs, xpos)
	for d := dlo; d <= dhi; d++ {
		v := math.Pow(10, d)
		y := ly(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", rightPanel, y, rightPanel+panelW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", rightPanel-6, y+4, decade(v))
	}
	for _, t := range targets {
		var p50, p99 []string
		for _, r := range byTarget[t] {
			x := xpos(rightPanel, r.Clients)
			p50 = append(p50, fmt.Sprintf("%.1f,%.1f", x, ly(r.Latency.P50)))
			p99 = append(p99, fmt.Sprintf("%.1f,%.1f", x, ly(r.Latency.P99)))
		}
		polyline(&b, p50, seriesColors[t], "")
		polyline(&b, p99, seriesColors[t], "6,4")
	}

	// Legend.
	for i, t := range targets {
		x := 20 + i*chartLegendWidth
		y := chartH - 8
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, y-4, x+24, y-4, seriesColors[t])
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x+30, y, html.EscapeString(t))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// axes draws a panel's frame, x ticks and labels.
func (rep *Report) axes(b *strings.Builder, left int, ylabel, xlabel string, xs []int, xpos func(float64, int) float64) {
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, panelTop, panelW, panelH)
	for _, c := range xs {
		x := xpos(float64(left), c)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`+"\n", x, panelTop+panelH, x, panelTop+panelH+chartTickLength)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x, panelTop+panelH+18, c)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", left+panelW/2, panelTop+panelH+36, xlabel)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", left, panelTop-8, html.EscapeString(ylabel))
}

func polyline(b *strings.Builder, pts []string, color, dash string) {
	if len(pts) == 0 {
		return
	}
	d := ""
	if dash != "" {
		d = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), color, d)
	for _, p := range pts {
		x, y, _ := strings.Cut(p, ",")
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, color)
	}
}

// niceTicks returns about n round tick values from lo to at least hi.
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	var ticks []float64
	for v := lo; ; v += step {
		ticks = append(ticks, v)
		if v >= hi {
			break
		}
	}
	return ticks
}

// decade formats a power of ten of microseconds: 10µs, 1ms, 10s.
func decade(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%gs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%gms", us/1e3)
	case us >= 1:
		return fmt.Sprintf("%gµs", us)
	}
	return fmt.Sprintf("%gns", us*1e3)
}

// shortNumber formats v as 1.2M, 350k or 12.
func shortNumber(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e6), ".0") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", v/1e3), ".0") + "k"
	}
	return fmt.Sprintf("%.0f", v)
}
