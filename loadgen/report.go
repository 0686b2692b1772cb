package loadgen

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// FileLimit is RLIMIT_NOFILE as found and as raised.
type FileLimit struct {
	SoftBefore uint64 `json:"soft_before"`
	Soft       uint64 `json:"soft"`
	Hard       uint64 `json:"hard"`
}

// Report is everything one `ockamhub bench` invocation measured: the JSON
// object that --json prints.
type Report struct {
	Scenario Scenario `json:"scenario"`
	// Hub is how the hub ran: "in-process", "spawned" or "external".
	Hub       string    `json:"hub"`
	Machine   Machine   `json:"machine"`
	FileLimit FileLimit `json:"file_limit"`
	// Runs holds one Result per target and number of clients, the hub's
	// first.
	Runs []*Result `json:"runs"`
	// Ratios compares the hub with each baseline at each number of
	// clients.
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Ratio is hub ÷ baseline for one number of clients: above 1 the hub has
// more throughput (MsgsPerSec, MBPerSec) or more latency (the percentiles).
type Ratio struct {
	Clients int `json:"clients"`
	// Client is the hub run's client path (baselines always use Raw).
	Client     ClientPath `json:"client"`
	Baseline   Target     `json:"baseline"`
	MsgsPerSec float64    `json:"msgs_per_sec"`
	MBPerSec   float64    `json:"mb_per_sec"`
	P50        float64    `json:"p50"`
	P90        float64    `json:"p90"`
	P99        float64    `json:"p99"`
	P999       float64    `json:"p999"`
}

// ComputeRatios fills in Ratios from Runs.
func (rep *Report) ComputeRatios() {
	rep.Ratios = nil
	for _, h := range rep.Runs {
		if h.Target != TargetHub {
			continue
		}
		for _, b := range rep.Runs {
			if b.Target == TargetHub || b.Clients != h.Clients {
				continue
			}
			rep.Ratios = append(rep.Ratios, Ratio{
				Clients: h.Clients, Client: h.Client, Baseline: b.Target,
				MsgsPerSec: ratio(h.MsgsPerSec, b.MsgsPerSec), MBPerSec: ratio(h.MBPerSec, b.MBPerSec),
				P50: ratio(h.Latency.P50, b.Latency.P50), P90: ratio(h.Latency.P90, b.Latency.P90),
				P99: ratio(h.Latency.P99, b.Latency.P99), P999: ratio(h.Latency.P999, b.Latency.P999),
			})
		}
	}
}

// ratio returns a/b to three significant digits, or 0 if b is 0.
func ratio(a, b float64) float64 {
	if b == 0 || a == 0 {
		return 0
	}
	x := a / b
	scale := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*scale) / scale
}

// WriteText writes the report as tables for people.
func (rep *Report) WriteText(w io.Writer) error {
	m := rep.Machine
	fmt.Fprintf(w, "ockamhub bench %s: hub %s; %d CPUs (%s), %s %s/%s\n", rep.Scenario, rep.Hub, m.NumCPU, m.CPUModel, m.GoVersion, m.OS, m.Arch)
	if len(rep.Runs) == 0 {
		return nil
	}
	r0 := rep.Runs[0]
	if r0.Idle != nil {
		return rep.writeIdle(w)
	}
	warm := ""
	fmt.Fprintf(w, "client %s, %d in flight per client, %d-byte payloads, latency %s%s\n\n",
		r0.Client, r0.Inflight, r0.Size, strings.ReplaceAll(r0.LatencyKind, "_", " "), warm)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tclients\tmsgs/s\tMB/s\tp50\tp90\tp99\tp99.9\terrors\tserver CPU\tmsgs/CPU-s\tserver RSS\tbench CPU\t")
	for _, r := range rep.Runs {
		target := r.Label()
		perCPU := "-"
		if r.MsgsPerServerCPUSec != nil {
			perCPU = thousands(*r.MsgsPerServerCPUSec)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%.0f%%\t\n",
			target, r.Clients, thousands(r.MsgsPerSec), r.MBPerSec,
			us(r.Latency.P50), us(r.Latency.P90), us(r.Latency.P99), us(r.Latency.P999),
			r.Errors, pct(r.ServerCPUPercent), perCPU, mib(r.ServerRSSBytes), r.ProcessCPUPercent)
	}
	tw.Flush()
	fmt.Fprintf(w, "(server = the hub's process, or the baseline server's, when it runs apart; msgs/CPU-s = msgs/s per second of server CPU; bench = this process)\n")
	if len(rep.Ratios) > 0 {
		fmt.Fprintf(w, "\nhub ÷ baseline (throughput above 1 = hub faster; latency above 1 = hub slower)\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "hub client\tvs\tclients\tmsgs/s\tMB/s\tp50\tp90\tp99\tp99.9\t")
		for _, x := range rep.Ratios {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t%.2f×\t\n",
				x.Client, x.Baseline, x.Clients, x.MsgsPerSec, x.MBPerSec, x.P50, x.P90, x.P99, x.P999)
		}
		tw.Flush()
	}
	return nil
}

func (rep *Report) writeIdle(w io.Writer) error {
	fmt.Fprintf(w, "open files: soft limit %d (was %d), hard limit %d\n\n", rep.FileLimit.Soft, rep.FileLimit.SoftBefore, rep.FileLimit.Hard)
	for _, r := range rep.Runs {
		ir := r.Idle
		fmt.Fprintf(w, "connections:        %d asked, %d held with a forwarder each, %d still delivering at the end, %d errors\n",
			ir.Conns, ir.Held, ir.Verified, ir.Errors)
		fmt.Fprintf(w, "connect + register: %.2fs (%d source addresses); one registration p50 %s, p99 %s\n",
			ir.ConnectSeconds, ir.SourceAddrs, us(ir.Registration.P50), us(ir.Registration.P99))
		fmt.Fprintf(w, "memory (%s): RSS %s before, %s after (peak %s): %.1f KB per connection\n",
			ir.Measured, mib(&ir.RSSBeforeBytes), mib(&ir.RSSAfterBytes), mib(&ir.RSSPeakBytes), ir.BytesPerConn/1000)
		if ir.GoBytesPerConn != nil {
			fmt.Fprintf(w, "Go heap objects + stacks after GC: %.1f KB per connection\n", *ir.GoBytesPerConn/1000)
		}
		if r.ServerCPUPercent != nil {
			fmt.Fprintf(w, "hub CPU while holding them: %.1f%%\n", *r.ServerCPUPercent)
		}
		fmt.Fprintf(w, "check round trip through every forwarder: p50 %s, p99 %s\n", us(r.Latency.P50), us(r.Latency.P99))
	}
	return nil
}

// Label names the run's row and chart series: the target, and for a hub
// run on the library's client, "hub (node client)".
func (r *Result) Label() string {
	if r.Target == TargetHub && r.Client == Library && r.Scenario != Secure {
		return "hub (node client)"
	}
	return string(r.Target)
}

// us formats microseconds.
func us(v float64) string {
	d := time.Duration(v * 1e3)
	switch {
	case v == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", v)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", v/1e3)
	}
	return fmt.Sprintf("%.2fs", v/1e6)
}

func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", *p)
}

func mib(b *uint64) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(*b)/(1<<20))
}

// thousands formats v rounded, with thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
