package portal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// InletConfig configures an Inlet. Route or RouteFunc is required.
type InletConfig struct {
	// Route is the route to the outlet, e.g. [1#HUB, 0#ALIAS] (through a
	// hub forwarder) or [0#CHANNEL, 0#outlet] (inside a secure channel).
	Route routing.Route
	// RouteFunc, when set, is called for each accepted connection and
	// returns the route to use with the budget of the secure channel it
	// starts with (nil for none). It lets a secure inlet renew its channel
	// before the channel's message budget runs out.
	RouteFunc func(ctx context.Context) (routing.Route, *Budget, error)
	// HandshakeTimeout bounds the wait for the outlet's Pong; 0 means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Options are the settings shared with outlets.
	Options Options
	// Logger receives portal opens and closes; nil discards.
	Logger *slog.Logger
}

// Inlet is the inlet side of TCP portals: each connection accepted by
// Serve becomes a portal to the outlet at the end of the route. The
// generation is recognised from the outlet's answer (00: G2, 01: G3).
// Create one with NewInlet; it is safe for concurrent use.
type Inlet struct {
	cfg    InletConfig
	node   *node.Node
	log    *slog.Logger
	stats  counters
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	lns    []net.Listener
	closed bool
	watch  connWatch
	// acceptErr rate-limits the log of failed accepts.
	acceptErr rate.Sometimes
	// early: the routes whose outlet's last Pong offered FeatureEarlyData
	// (see earlyRoutes).
	early earlyRoutes
}

// earlyRoutes remembers the routes whose outlet takes early data: only a
// Ping to one of them carries the client's first bytes (a G2 outlet would
// not answer the Ping, portals.md §4.2). Each Pong updates its route's
// entry; a failed handshake that carried early data removes it. It is
// safe for concurrent use; the zero value is empty.
//
// An entry also counts the route's early Pings not answered yet: past
// maxEarlyInFlight, Pings on the route are plain until some are answered.
// When a G2 outlet has taken the route's outlet's place, no early Ping is
// answered, and each fails after the handshake timeout: the count bounds
// how many portals that costs (otherwise every portal opened on the route
// during the first timeout would fail).
type earlyRoutes struct {
	mu     sync.Mutex
	routes map[string]int // route key → early Pings in flight
}

// maxEarlyRoutes bounds earlyRoutes: past it, the set starts again empty
// (a RouteFunc that opens a new channel now and then makes new routes).
const maxEarlyRoutes = 1024

// maxEarlyInFlight bounds the early Pings on one route that wait for their
// answer (see earlyRoutes).
const maxEarlyInFlight = 16

// routeKey is a route's identity, cheaper to build than its text.
func routeKey(route routing.Route) string {
	n := 0
	for _, a := range route {
		n += 1 + binary.MaxVarintLen16 + len(a.Value)
	}
	b := make([]byte, 0, n)
	for _, a := range route {
		b = append(binary.AppendUvarint(append(b, byte(a.Type)), uint64(len(a.Value))), a.Value...)
	}
	return string(b)
}

// take reports whether a Ping on the route may carry early data; when it
// does, the caller calls done once its handshake is over.
func (e *earlyRoutes) take(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	n, ok := e.routes[key]
	if !ok || n >= maxEarlyInFlight {
		return false
	}
	e.routes[key] = n + 1
	return true
}

// done ends an early Ping's wait for its answer (taken by take).
func (e *earlyRoutes) done(key string) {
	e.mu.Lock()
	if n, ok := e.routes[key]; ok && n > 0 {
		e.routes[key] = n - 1
	}
	e.mu.Unlock()
}

func (e *earlyRoutes) set(key string, takes bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.routes[key]; ok == takes {
		return
	}
	if !takes {
		delete(e.routes, key)
		return
	}
	if e.routes == nil || len(e.routes) >= maxEarlyRoutes {
		e.routes = make(map[string]int)
	}
	e.routes[key] = 0
}

// NewInlet returns an inlet on n; it accepts nothing until Serve.
func NewInlet(n *node.Node, cfg InletConfig) (*Inlet, error) {
	if len(cfg.Route) == 0 && cfg.RouteFunc == nil {
		return nil, fmt.Errorf("portal: inlet needs a route: %w", node.ErrEmptyRoute)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	cfg.Options = cfg.Options.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Inlet{cfg: cfg, node: n, log: log, ctx: ctx, cancel: cancel, acceptErr: rate.Sometimes{First: 3, Interval: 10 * time.Second}}, nil
}

// Stats returns the inlet's counters.
func (in *Inlet) Stats() Stats { return in.stats.snapshot() }

// Serve accepts connections on l until Close; it returns ErrClosed then,
// or an error when l is closed by someone else. Other accept errors (out of
// descriptors, an aborted connection) are logged and retried after a delay.
func (in *Inlet) Serve(l net.Listener) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return ErrClosed
	}
	in.lns = append(in.lns, l)
	in.mu.Unlock()
	// late: keep-alive is set once the portal is open (see Listen).
	_, late := l.(lateKeepAlive)
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if in.ctx.Err() != nil {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("portal: accepting: %w", err)
			}
			// Out of descriptors (EMFILE), an aborted connection and the
			// like pass: wait a little and accept again, rather than stop
			// serving for good.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			in.acceptErr.Do(func() {
				in.log.Warn("portal: accepting; retrying", "err", err, "in", delay)
			})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-in.ctx.Done():
				t.Stop()
				return ErrClosed
			}
			continue
		}
		delay = 0
		in.wg.Go(func() { in.serveConn(in.ctx, nc, late) })
	}
}

// Close stops accepting, closes every open portal (each sends Disconnect)
// and waits for them. It is idempotent.
func (in *Inlet) Close() error {
	in.cancel() // before the listeners close, so that Serve reports ErrClosed
	in.mu.Lock()
	in.closed = true
	lns := in.lns
	in.lns = nil
	in.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	in.wg.Wait()
	return nil
}

// Listen listens on the network address as net.Listen does, for an
// Inlet's Serve: the same keep-alive (Go's default: 15 s, 9 probes) is
// turned on for each connection, but only once the outlet has answered
// its portal's Ping rather than as it is accepted, four system calls
// fewer before the Ping goes (as an outlet does with the connections it
// dials). A listener from elsewhere keeps its own keep-alive setting.
func Listen(ctx context.Context, network, address string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("portal: listening: %w", err)
	}
	return lateKeepAlive{l}, nil
}

// lateKeepAlive is a listener from Listen: its connections get their
// keep-alive from the inlet, after the handshake.
type lateKeepAlive struct{ net.Listener }

// ServeConn opens a portal for nc, relays until it closes, and closes nc.
func (in *Inlet) ServeConn(ctx context.Context, nc net.Conn) { in.serveConn(ctx, nc, false) }

// serveConn is ServeConn; keepAlive: turn on nc's keep-alive once the
// outlet has answered (nc comes from Listen).
func (in *Inlet) serveConn(ctx context.Context, nc net.Conn, keepAlive bool) {
	route, budget := in.cfg.Route, (*Budget)(nil)
	if in.cfg.RouteFunc != nil {
		var err error
		if route, budget, err = in.cfg.RouteFunc(ctx); err != nil {
			in.stats.failed.Add(1)
			in.log.Warn("portal: no route to the outlet", "client", nc.RemoteAddr().String(), "err", err)
			nc.Close()
			return
		}
	}
	// The portal's worker exists before the Ping goes: the outlet's answer,
	// and whatever follows it at once, are handled as they arrive.
	c := newPConn(in.node, nc, "inlet", G3, nil, budget, in.log, in.cfg.Options, &in.stats)
	c.handshaking = true
	c.watch = &in.watch
	c.hs = make(chan handshakeResult, 1)
	if err := c.register(); err != nil {
		nc.Close()
		return
	}
	// Early data: what the client has already sent goes with the Ping, to
	// an outlet known to take it, read without waiting (as late as
	// possible, to find more of it). The portal keeps the bytes until the
	// Pong says how many the outlet took; the reader sends the rest first.
	var key string
	if !in.cfg.Options.NoExtension && !in.cfg.Options.NoEarlyData {
		key = routeKey(route)
		if in.early.take(key) {
			var early, buf []byte
			if room := earlyRoom(route, c.addr); room > 0 && c.rc != nil {
				// The reader's first buffer: it sends what the outlet
				// does not take from there.
				buf = make([]byte, headroom+smallRead)
				early = buf[headroom : headroom+tryRead(c.rc, buf[headroom:headroom+min(room, smallRead)])]
			}
			c.hmu.Lock() // the Pong's handler reads them
			c.early, c.pingEarly, c.readBuf = early, true, buf
			c.hmu.Unlock()
		}
	}
	ext, err := in.handshake(ctx, c, route, budget)
	if c.pingEarly {
		in.early.done(key)
	}
	if err != nil {
		in.stats.failed.Add(1)
		if c.pingEarly {
			// Perhaps an outlet that refuses the early-data form (G2) took
			// the route's place: the next Ping is plain.
			in.early.set(key, false)
		}
		in.log.Warn("portal: handshake failed", "client", nc.RemoteAddr().String(), "route", route.String(), "err", err)
		c.unregister()
		nc.Close()
		return
	}
	if key != "" {
		in.early.set(key, ext != nil && ext.Features&FeatureEarlyData != 0)
	}
	if tc, ok := nc.(*net.TCPConn); ok && keepAlive {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	}
	// The outlet learnt the window from the Ping when it read its early
	// form: then no first Credit.
	c.run(ctx, ext != nil && !(c.pingEarly && ext.Features&FeatureEarlyData != 0))
}

// earlyRoom is the most early data a Ping along route from from may
// carry: MaxEarly, less when the frame (with the routes, the early-data
// header, and a secure channel's overhead) would not fit 65535 bytes.
func earlyRoom(route routing.Route, from routing.Address) int {
	m := routing.TransportMessage{Version: routing.Version, Onward: route, Return: routing.Route{from}}
	room := 65535 - frameSlack - headroom - 2*(m.EncodedLen()+4)
	return min(room, MaxEarly)
}

// handshake sends the Ping, with c.early when there is some, and waits for
// the answer (portals.md §5), which c's worker handles; it returns the
// extension offer in force, or nil.
func (in *Inlet) handshake(ctx context.Context, c *pconn, route routing.Route, budget *Budget) (*Extension, error) {
	if !budget.take(false) {
		return nil, ErrBudget
	}
	hctx, cancel := context.WithTimeout(ctx, in.cfg.HandshakeTimeout)
	defer cancel()
	p := AppendPing(nil)
	if c.pingEarly {
		p = AppendPingEarly(nil, uint64(in.cfg.Options.Window), c.early)
	}
	ping := routing.TransportMessage{Version: routing.Version, Onward: route, Return: routing.Route{c.addr}, Payload: p}
	if err := in.node.Route(hctx, ping); err != nil {
		return nil, fmt.Errorf("portal: sending Ping to %s: %w", route, err)
	}
	select {
	case r := <-c.hs:
		return r.ext, r.err
	case <-hctx.Done():
		if ctx.Err() == nil {
			return nil, fmt.Errorf("%w: no answer from %s within %v", ErrTimeout, route, in.cfg.HandshakeTimeout)
		}
		return nil, ctx.Err()
	}
}
