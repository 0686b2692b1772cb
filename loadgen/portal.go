package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// PortalConfig configures RunPortal. The zero value means the defaults.
type PortalConfig struct {
	// Streams are the numbers of concurrent streams to measure; nil means
	// 1 and 16.
	Streams []int
	// Bytes is what each configuration downloads in all, split evenly
	// between its streams; 0 means 256 MiB.
	Bytes int64
	// Samples is the number of connections timed for the time to first
	// byte; 0 means 200.
	Samples int
	// Rounds is how many times the paths take turns downloading a share of
	// Bytes, each round in another order; 0 means 4.
	Rounds int
	// Options are the portals' settings (window, chunk sizes).
	Options portal.Options
	// Logger receives the portals' logs; nil discards.
	Logger *slog.Logger
}

// PortalResult is one measured configuration.
type PortalResult struct {
	Path    string  `json:"path"` // "relay", "portal", "portal-secure"
	Streams int     `json:"streams"`
	MBps    float64 `json:"mb_per_s"`
	Ratio   float64 `json:"ratio_to_relay"`
}

// PortalTTFB is the time to first byte of a new connection (connect, send
// one byte, receive one byte), p50 over the samples. In PortalReport.TTFB
// (the measurement of sessions 2 to 4) the paths are measured one after the
// other, each connection closed as its first byte arrives while the next
// opens at once, and RTT over back-to-back round trips; in
// PortalReport.TTFBQuiet the paths take turns sample by sample, and each
// sample (first byte or round trip) starts once the previous connection is
// closed end to end (see firstByteQuiet).
type PortalTTFB struct {
	Path string        `json:"path"` // "direct", "relay", "portal", "portal-secure"
	P50  time.Duration `json:"p50_ns"`
	// RTT is the p50 round trip of one byte on an established connection
	// along the same path; ExtraRTT is (P50 - direct P50) / RTT.
	RTT      time.Duration `json:"rtt_ns"`
	ExtraRTT float64       `json:"extra_rtt"`
	// ExtraWarmRTT (in TTFBQuiet only) is the same difference in units of
	// the back-to-back RTT of PortalReport.TTFB: a single round trip right
	// after a connection opens (RTT here) may cost more than one among
	// many in a row.
	ExtraWarmRTT float64 `json:"extra_warm_rtt,omitempty"`
}

// PortalReport is what RunPortal measured.
type PortalReport struct {
	Throughput []PortalResult `json:"throughput"`
	TTFB       []PortalTTFB   `json:"ttfb"`
	// TTFBQuiet is the same measured with samples that do not overlap
	// (firstByteQuiet).
	TTFBQuiet []PortalTTFB `json:"ttfb_quiet"`
}

// RunPortal measures TCP portals inlet → hub → outlet, plain and inside a
// secure channel, against a plain Go TCP relay hop, all in this process on
// 127.0.0.1: download MB/s of each stream count, and the time to first
// byte of a new connection.
func RunPortal(ctx context.Context, cfg PortalConfig) (*PortalReport, error) {
	if cfg.Streams == nil {
		cfg.Streams = []int{1, 16}
	}
	if cfg.Bytes <= 0 {
		cfg.Bytes = 256 << 20
	}
	if cfg.Samples <= 0 {
		cfg.Samples = 200
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 4
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cleanup []func()
	defer func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}()
	listen := func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	listenInlet := func() (net.Listener, error) { return portal.Listen(context.Background(), "tcp", "127.0.0.1:0") }

	// The target: "s" + 8-byte size downloads that many bytes; any other
	// byte is echoed (time to first byte, round trips).
	tl, err := listen()
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { tl.Close() })
	go serveTarget(tl)
	target := tl.Addr().String()

	relay := &Relay{Upstream: target}
	rl, err := listen()
	if err != nil {
		return nil, err
	}
	go relay.Serve(rl)
	cleanup = append(cleanup, func() { relay.Close() })

	h, err := hub.New(hub.Config{})
	if err != nil {
		return nil, err
	}
	hl, err := listen()
	if err != nil {
		return nil, err
	}
	go h.Serve(hl)
	cleanup = append(cleanup, func() { h.Close() })
	hubAddr := hl.Addr().String()

	newNode := func() (*node.Node, routing.Address, error) {
		n := node.New(node.Config{Logger: log})
		tr, err := tcp.New(n, tcp.Config{Logger: log})
		if err != nil {
			n.Close()
			return nil, routing.Address{}, err
		}
		cleanup = append(cleanup, func() { tr.Close(); n.Close() })
		a, err := tr.Connect(ctx, hubAddr)
		return n, a, err
	}
	// The outlet's node: a plain outlet behind a forwarder, and a secure
	// channel listener (behind another) in front of the same outlet.
	on, oh, err := newNode()
	if err != nil {
		return nil, err
	}
	l, err := securechannel.Listen(ctx, on, "secure_channel", securechannel.ListenerConfig{AcceptAnyInitiator: true, IdleTimeout: -1, Logger: log})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { l.Close() })
	o, err := portal.NewOutlet(on, portal.OutletConfig{Target: target, Options: cfg.Options, Logger: log})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { o.Close() })
	rfPlain, err := forwarding.Register(ctx, on, routing.Route{oh}, o.Address().Value)
	if err != nil {
		return nil, err
	}
	rfSecure, err := forwarding.Register(ctx, on, routing.Route{oh}, "secure_channel")
	if err != nil {
		return nil, err
	}
	inn, _, err := newNode()
	if err != nil {
		return nil, err
	}
	ch, err := securechannel.Create(ctx, inn, rfSecure.Route(), securechannel.Config{ExpectedPeerStatic: l.StaticPublic(), Logger: log})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { ch.Close() })
	startInlet := func(route routing.Route) (string, error) {
		in, err := portal.NewInlet(inn, portal.InletConfig{Route: route, Options: cfg.Options, Logger: log})
		if err != nil {
			return "", err
		}
		il, err := listenInlet()
		if err != nil {
			return "", err
		}
		go in.Serve(il)
		cleanup = append(cleanup, func() { in.Close() })
		return il.Addr().String(), nil
	}
	plainAddr, err := startInlet(rfPlain.Route())
	if err != nil {
		return nil, err
	}
	secureAddr, err := startInlet(routing.Route{ch.Address(), o.Address()})
	if err != nil {
		return nil, err
	}
	paths := []struct{ name, addr string }{{"relay", rl.Addr().String()}, {"portal", plainAddr}, {"portal-secure", secureAddr}}

	rep := &PortalReport{}
	for _, streams := range cfg.Streams {
		// The paths take turns, Rounds times, each round in another order,
		// so that a change of the machine's load falls on every path alike
		// instead of on whichever ran in that minute; each path's MB/s is
		// over all its rounds.
		per := max(cfg.Bytes/int64(cfg.Rounds)/int64(streams), 1)
		secs := make([]float64, len(paths))
		for r := range cfg.Rounds {
			for k := range paths {
				i := (k + r) % len(paths)
				p := paths[i]
				mbps, err := download(ctx, p.addr, streams, per)
				if err != nil {
					return nil, fmt.Errorf("loadgen: %s, %d streams: %w", p.name, streams, err)
				}
				secs[i] += float64(per*int64(streams)) / 1e6 / mbps
			}
		}
		total := float64(per*int64(streams)*int64(cfg.Rounds)) / 1e6
		relayMBps := total / secs[0]
		for i, p := range paths {
			mbps := total / secs[i]
			rep.Throughput = append(rep.Throughput, PortalResult{Path: p.name, Streams: streams, MBps: mbps, Ratio: ratio(mbps, relayMBps)})
		}
	}
	ttfbPaths := append([]struct{ name, addr string }{{"direct", target}}, paths...)
	var direct time.Duration
	for _, p := range ttfbPaths {
		ttfb, rtt, err := firstByte(ctx, p.addr, cfg.Samples)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %s time to first byte: %w", p.name, err)
		}
		if p.name == "direct" {
			direct = ttfb
		}
		extra := 0.0
		if rtt > 0 {
			extra = float64(ttfb-direct) / float64(rtt)
		}
		rep.TTFB = append(rep.TTFB, PortalTTFB{Path: p.name, P50: ttfb, RTT: rtt, ExtraRTT: extra})
	}
	ttfbs, rtts, err := firstByteQuiet(ctx, ttfbPaths, cfg.Samples)
	if err != nil {
		return nil, fmt.Errorf("loadgen: time to first byte, quiet: %w", err)
	}
	for i, p := range ttfbPaths {
		extra := 0.0
		if rtts[i] > 0 {
			extra = float64(ttfbs[i]-ttfbs[0]) / float64(rtts[i])
		}
		warm := 0.0
		if w := rep.TTFB[i].RTT; w > 0 {
			warm = float64(ttfbs[i]-ttfbs[0]) / float64(w)
		}
		rep.TTFBQuiet = append(rep.TTFBQuiet, PortalTTFB{Path: p.name, P50: ttfbs[i], RTT: rtts[i], ExtraRTT: extra, ExtraWarmRTT: warm})
	}
	return rep, nil
}

// serveTarget serves the benchmark target on l until it closes.
func serveTarget(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			b := make([]byte, 9)
			for {
				if _, err := io.ReadFull(c, b[:1]); err != nil {
					return
				}
				if b[0] != 's' {
					if _, err := c.Write(b[:1]); err != nil {
						return
					}
					continue
				}
				if _, err := io.ReadFull(c, b[1:]); err != nil {
					return
				}
				var n int64
				for _, x := range b[1:] {
					n = n<<8 | int64(x)
				}
				buf := make([]byte, 256<<10)
				for n > 0 {
					k := min(n, int64(len(buf)))
					if _, err := c.Write(buf[:k]); err != nil {
						return
					}
					n -= k
				}
				return
			}
		}()
	}
}

// download runs streams concurrent downloads of n bytes each through addr
// and returns the aggregate MB/s (10^6 bytes per second).
func download(ctx context.Context, addr string, streams int, n int64) (float64, error) {
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	start := time.Now()
	for range streams {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			req := []byte{'s', 0, 0, 0, 0, 0, 0, 0, 0}
			for i := range 8 {
				req[8-i] = byte(n >> (8 * i))
			}
			if _, err := c.Write(req); err != nil {
				errs <- err
				return
			}
			got, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
			if err == nil && got != n {
				err = fmt.Errorf("got %d of %d bytes", got, n)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n*int64(streams)) / time.Since(start).Seconds() / 1e6, nil
}

// firstByte times samples new connections through addr from dial to the
// first byte of the answer, and as many round trips on one established
// connection; it returns both p50s.
func firstByte(ctx context.Context, addr string, samples int) (ttfb, rtt time.Duration, err error) {
	var d net.Dialer
	times := make([]time.Duration, 0, samples)
	b := []byte{'x'}
	for range samples {
		sctx, cancel := context.WithTimeout(ctx, sampleTimeout)
		start := time.Now()
		c, err := d.DialContext(sctx, "tcp", addr)
		if err != nil {
			cancel()
			return 0, 0, err
		}
		stop := bound(sctx, c)
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		times = append(times, time.Since(start))
		stop()
		cancel()
		c.Close()
		if err != nil {
			return 0, 0, err
		}
	}
	ttfb = median(times)
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	defer bound(ctx, c)()
	times = times[:0]
	for range samples {
		// Each round trip is bounded, by a deadline armed before it is
		// timed.
		c.SetDeadline(time.Now().Add(sampleTimeout))
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
	}
	return ttfb, median(times), nil
}

// sampleTimeout bounds each sample of firstByte and firstByteQuiet (each
// connection's first byte, each round trip, each close): a path that
// fails to answer or to close ends the measurement with an error instead
// of hanging it.
const sampleTimeout = 10 * time.Second

// bound makes c's reads and writes fail once ctx ends (a read on an
// established connection does not watch a context); stop undoes it. Its
// cost (one registration, no timer, no goroutine) falls alike on every
// path timed.
func bound(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
}

// quietWarmup is how many unrecorded samples firstByteQuiet takes of each
// path first (a portal's first connections on a route learn whether its
// outlet takes early data).
const quietWarmup = 5

// firstByteQuiet times, for each of paths, samples new connections from
// dial to the first byte of the answer, and as many single round trips on
// one established connection; it returns the p50s in the order of paths.
// Unlike firstByte, no sample overlaps the teardown of another: after its
// first byte (and after each round trip's answer) the client half-closes
// and reads to the end, so that the path (a portal: Disconnect both ways
// through the hub, the outlet's close of its target) has closed the
// connection end to end before the next sample starts, untimed; each
// round trip is timed on a connection of its own, opened (one untimed
// round trip) and closed in the same way, so that it is measured in the
// same minutes and conditions as the first bytes beside it. The
// paths take turns sample by sample (each round in a rotated order), so
// that a change in the machine's load falls on all of them alike.
func firstByteQuiet(ctx context.Context, paths []struct{ name, addr string }, samples int) (ttfb, rtt []time.Duration, err error) {
	var d net.Dialer
	b := []byte{'x'}
	// finish half-closes c and waits for the path to close it.
	finish := func(c net.Conn) error {
		defer c.Close()
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil {
				return err
			}
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			return fmt.Errorf("waiting for the close: %w", err)
		}
		return nil
	}
	// Each sample (dial, bytes, close) is bounded by sampleTimeout and ctx.
	one := func(addr string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
		defer cancel()
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, err
		}
		defer bound(ctx, c)()
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		t := time.Since(start)
		if err != nil {
			c.Close()
			return 0, err
		}
		return t, finish(c)
	}
	round := func(addr string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return 0, err
		}
		defer bound(ctx, c)()
		// The connection is established end to end once one byte has
		// come back; the round trip timed next starts, as a first byte
		// does, right after the client has read.
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		if err != nil {
			c.Close()
			return 0, err
		}
		start := time.Now()
		_, err = c.Write(b)
		if err == nil {
			_, err = io.ReadFull(c, b)
		}
		t := time.Since(start)
		if err != nil {
			c.Close()
			return 0, err
		}
		return t, finish(c)
	}
	firsts := make([][]time.Duration, len(paths))
	rounds := make([][]time.Duration, len(paths))
	for s := -quietWarmup; s < samples; s++ {
		for k := range paths {
			i := (k + max(s, 0)) % len(paths)
			t, err := one(paths[i].addr)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, first byte: %w", paths[i].name, err)
			}
			r, err := round(paths[i].addr)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, round trip: %w", paths[i].name, err)
			}
			if s >= 0 {
				firsts[i] = append(firsts[i], t)
				rounds[i] = append(rounds[i], r)
			}
		}
	}
	ttfb = make([]time.Duration, len(paths))
	rtt = make([]time.Duration, len(paths))
	for i := range paths {
		ttfb[i], rtt[i] = median(firsts[i]), median(rounds[i])
	}
	return ttfb, rtt, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// WriteText prints the report as two tables.
func (rep *PortalReport) WriteText(w io.Writer) error {
	var errs []error
	p := func(format string, args ...any) {
		_, err := fmt.Fprintf(w, format, args...)
		errs = append(errs, err)
	}
	p("%-14s %8s %10s %9s\n", "path", "streams", "MB/s", "×relay")
	for _, r := range rep.Throughput {
		p("%-14s %8d %10.1f %9.2f\n", r.Path, r.Streams, r.MBps, r.Ratio)
	}
	for _, tab := range []struct {
		name string
		rows []PortalTTFB
	}{{"back to back", rep.TTFB}, {"quiet", rep.TTFBQuiet}} {
		p("\n%-14s %12s %12s %14s %16s  (%s)\n", "path", "TTFB p50", "RTT p50", "extra RTTs", "extra warm RTTs", tab.name)
		for _, t := range tab.rows {
			warm := ""
			if t.ExtraWarmRTT != 0 {
				warm = fmt.Sprintf("%.1f", t.ExtraWarmRTT)
			}
			p("%-14s %12v %12v %14.1f %16s\n", t.Path, t.P50.Round(time.Microsecond), t.RTT.Round(time.Microsecond), t.ExtraRTT, warm)
		}
	}
	return errors.Join(errs...)
}

// WriteChart writes an SVG bar chart of the report: MB/s of each path for
// each stream count, and each path's time to first byte.
func (rep *PortalReport) WriteChart(w io.Writer) error {
	const width, height, top, bottom, left = 720, 300, 30, 50, 60
	colors := map[string]string{"relay": "#888888", "portal": "#1f77b4", "portal-secure": "#d62728", "direct": "#2ca02c"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	bars := func(x0, w0 float64, title, unit string, labels []string, values []float64, names []string) {
		maxV := 0.0
		for _, v := range values {
			maxV = max(maxV, v)
		}
		if maxV == 0 {
			maxV = 1
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="18" font-weight="bold">%s</text>`+"\n", x0, title)
		plotH := float64(height - top - bottom)
		bw := w0 / float64(len(values)+1)
		for i, v := range values {
			h := v / maxV * plotH
			x := x0 + bw*float64(i) + bw/4
			y := float64(top) + plotH - h
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, bw*0.8, h, colors[names[i]])
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.0f%s</text>`+"\n", x+bw*0.4, y-3, v, unit)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>`+"\n", x+bw*0.4, height-bottom+14, labels[i])
		}
	}
	var labels, names []string
	var values []float64
	for _, r := range rep.Throughput {
		labels = append(labels, fmt.Sprintf("%s×%d", r.Path, r.Streams))
		names = append(names, r.Path)
		values = append(values, r.MBps)
	}
	bars(left, 420, "download MB/s (higher is better)", "", labels, values, names)
	labels, names, values = nil, nil, nil
	for _, t := range rep.TTFB {
		labels = append(labels, t.Path)
		names = append(names, t.Path)
		values = append(values, float64(t.P50.Microseconds()))
	}
	bars(left+440, 200, "time to first byte, µs", "", labels, values, names)
	i := 0
	for _, n := range []string{"direct", "relay", "portal", "portal-secure"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", left+i*150, height-18, colors[n], left+i*150+14, height-9, n)
		i++
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
