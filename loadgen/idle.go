package loadgen

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ockamhub/ockamhub/routing"
)

// idleWorkers bounds the connections Idle opens (and checks) at once.
const idleWorkers = 64

// idleSettle is how long Idle waits before reading memory, so that the
// hub's goroutines have settled.
const idleSettle = time.Second

// IdleResult holds the Idle scenario's figures. Memory per connection is
// (RSS after − RSS before) / held, where RSS is VmRSS of the hub's process
// (or of this process when the hub runs in it).
type IdleResult struct {
	// Conns is the number of connections asked for; Held, those connected
	// and registered; Verified, those whose forwarder still delivered a
	// message back to them at the end.
	Conns    int `json:"conns"`
	Held     int `json:"held"`
	Verified int `json:"verified"`
	// Errors counts failed connections, registrations and checks.
	Errors int `json:"errors"`
	// SourceAddrs is the number of loopback source addresses used.
	SourceAddrs int `json:"source_addrs"`
	// ConnectSeconds is the time taken to connect and register them all;
	// Registration is the latency of one registration.
	ConnectSeconds float64 `json:"connect_seconds"`
	Registration   Latency `json:"registration_us"`
	// Measured says whose memory: "hub process" or "this process (hub and
	// clients)".
	Measured string `json:"measured"`
	// RSSBeforeBytes is before connecting, RSSAfterBytes after holding
	// them for the run's duration, RSSPeakBytes the largest seen.
	RSSBeforeBytes uint64  `json:"rss_before_bytes"`
	RSSAfterBytes  uint64  `json:"rss_after_bytes"`
	RSSPeakBytes   uint64  `json:"rss_peak_bytes"`
	BytesPerConn   float64 `json:"rss_bytes_per_conn"`
	// GoBytesPerConn is, when the hub runs in this process, the growth of
	// the Go heap's live objects and goroutine stacks per connection,
	// after a garbage collection: the part of the RSS the hub's code
	// controls.
	GoBytesPerConn *float64 `json:"go_bytes_per_conn,omitempty"`
}

// idleConn is one held connection.
type idleConn struct {
	nc  net.Conn
	fwd routing.Address
}

// runIdle connects Conns raw clients, registers a forwarder for each,
// holds them for Duration and then checks every forwarder still delivers.
func runIdle(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.HubProcess == nil && !cfg.HubInProcess {
		return nil, fmt.Errorf("loadgen: the idle scenario needs to see the hub's process (in process, spawned, or given by its pid)")
	}
	proc := cfg.HubProcess
	measured := "hub process"
	if cfg.HubInProcess {
		proc = Self()
		measured = "this process (hub and clients)"
	}
	need := uint64(cfg.Conns) + 64
	if cfg.HubInProcess {
		need += uint64(cfg.Conns)
	}
	if lim := fileLimit(); lim != 0 && need > lim {
		hint := "use --spawn to run the hub in its own process, or fewer connections"
		if !cfg.HubInProcess {
			hint = "use fewer connections, or raise the hard limit (ulimit -Hn, as root)"
		}
		return nil, fmt.Errorf("loadgen: %d connections need about %d open files in this process, and the limit is %d: %s", cfg.Conns, need, lim, hint)
	}
	srcs := cfg.SourceAddrs
	if per := portRange() * 9 / 10; srcs*per < cfg.Conns {
		srcs = (cfg.Conns + per - 1) / per
		cfg.Logger.Info("spreading connections over loopback source addresses", "source_addrs", srcs)
	}
	res := &Result{Scenario: Idle, Target: TargetHub, Client: Raw, Clients: cfg.Conns, Inflight: 1, Size: MinSize, LatencyKind: "round_trip"}
	ir := &IdleResult{Conns: cfg.Conns, SourceAddrs: srcs, Measured: measured}
	res.Idle = ir

	goBefore := goMemory(cfg.HubInProcess)
	var err error
	if ir.RSSBeforeBytes, err = proc.RSS(); err != nil {
		return nil, fmt.Errorf("loadgen: reading the hub's memory: %w", err)
	}
	ir.RSSPeakBytes = ir.RSSBeforeBytes

	held := make([]*idleConn, cfg.Conns)
	defer func() {
		for _, c := range held {
			if c != nil {
				c.nc.Close()
			}
		}
	}()
	epoch := time.Now()
	var next, done, failed atomic.Int64
	var mu sync.Mutex
	var hist Histogram
	var firstErr error
	work := func(f func(i int) error) {
		next.Store(0)
		var wg sync.WaitGroup
		for range idleWorkers {
			wg.Go(func() {
				var h Histogram
				for ctx.Err() == nil {
					i := int(next.Add(1)) - 1
					if i >= cfg.Conns {
						break
					}
					t0 := time.Now()
					if err := f(i); err != nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						continue
					}
					h.Record(time.Since(t0))
					done.Add(1)
				}
				mu.Lock()
				hist.Merge(&h)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	stopProgress := idleProgress(cfg, epoch, "connect", &done, &failed)
	work(func(i int) error {
		var src net.IP
		if srcs > 1 {
			src = net.IPv4(127, 0, 0, byte(1+i%srcs))
		}
		nc, err := dial(ctx, cfg.Hub, src)
		if err != nil {
			return err
		}
		fwd, err := registerRaw(nc, localName('i', i))
		if err != nil {
			nc.Close()
			return err
		}
		held[i] = &idleConn{nc: nc, fwd: fwd}
		return nil
	})
	stopProgress()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ir.ConnectSeconds = time.Since(epoch).Seconds()
	ir.Registration = hist.Summary()
	ir.Held = int(done.Load())
	ir.Errors = int(failed.Load())
	if firstErr != nil {
		cfg.Logger.Warn("idle connections failed", "failed", ir.Errors, "first_err", firstErr)
	}

	// Hold them, reading the memory now and then.
	self := startCPU(Self())
	hubCPU := startCPU(cfg.HubProcess)
	deadline := time.Now().Add(max(cfg.Duration, idleSettle))
	stopProgress = idleProgress(cfg, epoch, "hold", &done, &failed)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			stopProgress()
			return nil, ctx.Err()
		case <-time.After(min(time.Until(deadline), 250*time.Millisecond)):
		}
		if rss, err := proc.RSS(); err == nil {
			ir.RSSPeakBytes = max(ir.RSSPeakBytes, rss)
		}
	}
	stopProgress()
	if ir.RSSAfterBytes, err = proc.RSS(); err != nil {
		return nil, fmt.Errorf("loadgen: reading the hub's memory: %w", err)
	}
	ir.RSSPeakBytes = max(ir.RSSPeakBytes, ir.RSSAfterBytes)
	if goBefore >= 0 && ir.Held > 0 {
		g := float64(goMemory(true)-goBefore) / float64(ir.Held)
		g = float64(int64(g))
		ir.GoBytesPerConn = &g
	}
	res.ProcessCPUPercent, _ = self.percent()
	if p, ok := hubCPU.percent(); ok {
		res.ServerCPUPercent = &p
	}
	if ir.Held > 0 {
		ir.BytesPerConn = float64(int64(float64(int64(ir.RSSAfterBytes)-int64(ir.RSSBeforeBytes)) / float64(ir.Held)))
	}
	if cfg.HubProcess != nil {
		rss := ir.RSSAfterBytes
		res.ServerRSSBytes = &rss
	}
	res.ProcessRSSBytes, _ = Self().RSS()

	// Check that every forwarder still delivers: a message sent to it over
	// its own connection comes back on that connection.
	var verified atomic.Int64
	done.Store(0)
	hist = Histogram{}
	check := time.Now()
	work(func(i int) error {
		c := held[i]
		if c == nil {
			return nil
		}
		f, err := newFrame(routing.Route{c.fwd}, routing.Route{localName('v', i)}, MinSize)
		if err != nil {
			return err
		}
		c.nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.nc.Write(f.append(nil, int64(time.Since(epoch)))); err != nil {
			return fmt.Errorf("loadgen: checking connection %d: %w", i, err)
		}
		body, err := readOneFrame(c.nc)
		if err != nil {
			return fmt.Errorf("loadgen: checking connection %d: %w", i, err)
		}
		if _, _, err := parseBody(body); err != nil {
			return err
		}
		c.nc.SetDeadline(time.Time{})
		verified.Add(1)
		return nil
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ir.Verified = int(verified.Load())
	ir.Errors = int(failed.Load())
	res.Seconds = time.Since(check).Seconds()
	res.Msgs = uint64(ir.Verified)
	res.MsgsPerSec = float64(res.Msgs) / res.Seconds
	res.MBPerSec = res.MsgsPerSec * MinSize / 1e6
	res.Latency = hist.Summary()
	res.Errors = uint64(ir.Errors)
	return res, nil
}

// idleProgress reports Idle's progress every second until stopped.
func idleProgress(cfg Config, epoch time.Time, phase string, done, failed *atomic.Int64) func() {
	if cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastAt := done.Load(), time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				d := done.Load()
				cfg.Progress(Progress{
					Scenario: Idle, Target: TargetHub, Clients: cfg.Conns, Phase: phase,
					Elapsed: time.Since(epoch), Msgs: uint64(d),
					Rate:   float64(d-last) / now.Sub(lastAt).Seconds(),
					Errors: uint64(failed.Load()),
				})
				last, lastAt = d, now
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}

// goMemory returns the Go heap's live objects plus goroutine stacks after
// a garbage collection, or -1 when the hub is not in this process.
func goMemory(inProcess bool) int64 {
	if !inProcess {
		return -1
	}
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	var total int64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			total += int64(v.Value.Uint64())
		}
	}
	return total
}
