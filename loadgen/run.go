package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// drainTimeout bounds the wait for messages in flight once sending stops.
const drainTimeout = 3 * time.Second

// stallTicks is how many one-second ticks a client's window may stay full
// without a completion before its messages in flight are written off as
// lost, so that a dropped message cannot stop a client for good.
const stallTicks = 3

// run is one run in progress.
type run struct {
	cfg      Config
	epoch    time.Time
	from, to int64 // the measured window, in ns since epoch

	start    chan struct{}   // closed once epoch is set: goroutines begin
	ctx      context.Context // cancelled when the run is torn down
	cancel   context.CancelFunc
	stopping atomic.Bool   // senders stop at the end of the window
	stopCh   chan struct{} // closed with stopping
	closing  atomic.Bool   // connections are being closed: read errors are expected

	clients []*client
	closers []func()
	wg      sync.WaitGroup
	senders sync.WaitGroup // the send loops: drained once they have returned
	server  *Process       // a baseline server's child process, or nil
	errs    atomic.Uint64
	errOnce sync.Once
}

// now returns the nanoseconds since the run's epoch (monotonic).
func (r *run) now() int64 { return int64(time.Since(r.epoch)) }

// fail counts an error; the first is logged.
func (r *run) fail(what string, err error) {
	if r.closing.Load() || r.ctx.Err() != nil {
		return
	}
	r.errs.Add(1)
	r.errOnce.Do(func() { r.cfg.Logger.Warn("load generator error (first of possibly many)", "what", what, "err", err) })
}

// onClose registers f to run when the run is torn down (in reverse order).
func (r *run) onClose(f func()) { r.closers = append(r.closers, f) }

// conn registers nc to be closed when the run is torn down.
func (r *run) conn(nc net.Conn) net.Conn {
	r.onClose(func() { nc.Close() })
	return nc
}

// goroutine runs f in a goroutine the run waits for, once the load starts.
func (r *run) goroutine(f func()) {
	r.wg.Go(func() {
		select {
		case <-r.start:
			f()
		case <-r.ctx.Done():
		}
	})
}

// sender runs f, a send loop, like goroutine; drain waits for it to return
// (having flushed what it sent) before it counts what is still in flight.
func (r *run) sender(f func()) {
	r.senders.Add(1)
	r.goroutine(func() {
		defer r.senders.Done()
		f()
	})
}

// client is one client's window and figures. The sender owns sent; the
// completing goroutine (the reader that sees replies or receptions) owns
// hist and measured; the counters are shared.
type client struct {
	r        *run
	inflight int64

	sent       atomic.Uint64
	_          [56]byte // keep the reader's counter off the sender's cache line
	completed  atomic.Uint64
	writtenOff atomic.Uint64 // messages given up for lost, to reopen the window
	waiting    atomic.Bool
	wake       chan struct{}

	hist     Histogram
	measured uint64

	// the monitor's
	lastCompleted uint64
	stalled       int
}

func (r *run) newClient() *client {
	c := &client{r: r, inflight: int64(r.cfg.Inflight), wake: make(chan struct{}, 1)}
	r.clients = append(r.clients, c)
	return c
}

// outstanding returns the messages in the window.
func (c *client) outstanding() int64 {
	return int64(c.sent.Load()) - int64(c.completed.Load()) - int64(c.writtenOff.Load())
}

// acquire waits until fewer than limit messages are in the window. flush,
// when not nil, runs before waiting (it pushes out what is buffered). It
// returns false when the run is stopping.
func (c *client) acquire(limit int64, flush func() error) (bool, error) {
	for {
		if c.r.stopping.Load() {
			return false, nil
		}
		if c.outstanding() < limit {
			return true, nil
		}
		if flush != nil {
			if err := flush(); err != nil {
				return false, err
			}
		}
		c.waiting.Store(true)
		if c.outstanding() < limit {
			c.waiting.Store(false)
			continue
		}
		select {
		case <-c.wake:
		case <-c.r.stopCh:
			return false, nil
		}
	}
}

// complete records a message completed at now that was sent at ts.
func (c *client) complete(now, ts int64) {
	if now >= c.r.from && now < c.r.to {
		c.hist.Record(time.Duration(now - ts))
		c.measured++
	}
}

// publish makes k completions visible to the sender, waking it if it waits.
func (c *client) publish(k uint64) {
	if k == 0 {
		return
	}
	c.completed.Add(k)
	if c.waiting.Load() && c.waiting.CompareAndSwap(true, false) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// unblock wakes the sender.
func (c *client) unblock() {
	c.waiting.Store(false)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setupFunc connects a run's clients and starts their goroutines, which
// must not send before the run's epoch is set (they read r.now).
type setupFunc func(ctx context.Context, r *run) error

// runLoad runs a throughput and latency scenario: setup, warmup, the
// measured window, drain, teardown.
func runLoad(ctx context.Context, cfg Config, setup setupFunc) (*Result, error) {
	rctx, cancel := context.WithCancel(ctx)
	r := &run{cfg: cfg, ctx: rctx, cancel: cancel, stopCh: make(chan struct{}), start: make(chan struct{})}
	r.from = int64(cfg.Warmup)
	r.to = r.from + int64(cfg.Duration)
	defer r.teardown()
	if err := setup(rctx, r); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r.epoch = time.Now()
	close(r.start)
	res := &Result{
		Scenario: cfg.Scenario, Target: cfg.Target, Client: cfg.Client, Clients: cfg.Clients,
		Inflight: cfg.Inflight, Size: cfg.Size, LatencyKind: "round_trip",
	}
	if (cfg.Scenario == Forward || cfg.Scenario == Bulk) && !cfg.Reply {
		res.LatencyKind = "one_way"
	}
	mon := r.monitor()
	defer mon()
	if err := r.sleepUntil(r.from); err != nil {
		return nil, err
	}
	self := startCPU(Self())
	server := r.server
	if cfg.Target == TargetHub {
		server = cfg.HubProcess
	}
	hubCPU := startCPU(server)
	if err := r.sleepUntil(r.to); err != nil {
		return nil, err
	}
	res.ProcessCPUPercent, _ = self.percent()
	if p, ok := hubCPU.percent(); ok {
		res.ServerCPUPercent = &p
	}
	if server != nil {
		if rss, err := server.RSS(); err == nil {
			res.ServerRSSBytes = &rss
		}
	}
	res.ProcessRSSBytes, _ = Self().RSS()
	r.stopping.Store(true)
	close(r.stopCh)
	r.drain()
	mon()
	r.teardown()
	var h Histogram
	for _, c := range r.clients {
		h.Merge(&c.hist)
		res.Msgs += c.measured
		if out := int64(c.sent.Load()) - int64(c.completed.Load()); out > 0 {
			res.Lost += uint64(out)
		}
	}
	// Completions are counted by their timestamps within [from, to).
	res.Seconds = cfg.Duration.Seconds()
	res.MsgsPerSec = float64(res.Msgs) / res.Seconds
	res.MBPerSec = res.MsgsPerSec * float64(cfg.Size) / 1e6
	if p := res.ServerCPUPercent; p != nil && *p > 0 {
		v := res.MsgsPerSec / (*p / 100)
		res.MsgsPerServerCPUSec = &v
	}
	res.Latency = h.Summary()
	res.Errors = r.errs.Load() + res.Lost
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

func (r *run) sleepUntil(at int64) error {
	d := time.Duration(at - r.now())
	if d <= 0 {
		return r.ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// drain waits for the send loops to return and then for the messages in
// flight, at most drainTimeout in all.
func (r *run) drain() {
	deadline := time.Now().Add(drainTimeout)
	sent := make(chan struct{})
	go func() { r.senders.Wait(); close(sent) }()
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
		return
	case <-r.ctx.Done():
		return
	}
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		done := true
		for _, c := range r.clients {
			if int64(c.sent.Load())-int64(c.completed.Load()) > 0 {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// monitor reports progress every second and writes off stalled windows.
// The returned function stops it; it is idempotent.
func (r *run) monitor() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last uint64
		lastAt := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				var total uint64
				for _, c := range r.clients {
					comp := c.completed.Load()
					total += comp
					if comp == c.lastCompleted && c.outstanding() >= c.inflight && !r.stopping.Load() {
						if c.stalled++; c.stalled >= stallTicks {
							c.writtenOff.Add(uint64(c.outstanding()))
							c.stalled = 0
							c.unblock()
						}
					} else {
						c.stalled = 0
					}
					c.lastCompleted = comp
				}
				if r.cfg.Progress != nil {
					el := time.Duration(r.now())
					phase := "measure"
					switch {
					case r.stopping.Load():
						phase = "drain"
					case int64(el) < r.from:
						phase = "warmup"
					}
					r.cfg.Progress(Progress{
						Scenario: r.cfg.Scenario, Target: r.cfg.Target, Clients: r.cfg.Clients,
						Phase: phase, Elapsed: el, Msgs: total,
						Rate:   float64(total-last) / now.Sub(lastAt).Seconds(),
						Errors: r.errs.Load(),
					})
				}
				last, lastAt = total, now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); <-done }) }
}

// teardown closes every connection and server and waits for the run's
// goroutines. It is idempotent.
func (r *run) teardown() {
	r.closing.Store(true)
	if !r.stopping.Swap(true) {
		close(r.stopCh)
	}
	r.cancel()
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
	r.wg.Wait()
}

// dial connects to addr from the loopback source address src (nil for
// any).
func dial(ctx context.Context, addr string, src net.IP) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	return nc, nil
}

// expectedClose reports whether err is how a read ends when the run closes
// its connections.
func expectedClose(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
