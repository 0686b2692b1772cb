package portal

import (
	"context"
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

// DefaultOutletName is the outlet's well-known address, as in the 2021
// examples (create_outlet("outlet", …)).
const DefaultOutletName = "outlet"

// maxRefusing is how many Pings over MaxConns an outlet answers at once.
const maxRefusing = 32

// DefaultDialTimeout bounds the outlet's connect to its target.
const DefaultDialTimeout = 10 * time.Second

// OutletConfig configures an Outlet. Target is required.
type OutletConfig struct {
	// Name is the outlet's well-known local address; "" means
	// DefaultOutletName.
	Name string
	// Target is the HOST:PORT each portal connects to.
	Target string
	// Generation is the protocol the outlet answers in. G3 (the zero
	// value) also serves 2021 G3 inlets; G2 serves G2 inlets only (the
	// outlet must know before it answers: portals.md §4.4).
	Generation Generation
	// Dial connects to Target; nil uses a net.Dialer with DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds the connect; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConns bounds the open portals; a Ping over the limit is answered
	// as an unreachable target would be. 0 means no limit.
	MaxConns int
	// Authorize, when set, admits a Ping only if it returns true; it sees
	// the Ping as delivered (its return route starts with the hop it came
	// through, e.g. a secure channel's address). A secure outlet uses it to
	// refuse Pings that did not come through a channel.
	Authorize func(m *node.Message) bool
	// Budget, when set, returns the message budget of the secure channel a
	// portal's route (the Ping's return route) starts with, or nil.
	Budget func(route routing.Route) *Budget
	// Options are the settings shared with inlets.
	Options Options
	// Logger receives portal opens and closes; nil discards.
	Logger *slog.Logger
}

// Outlet is the outlet side of TCP portals: a worker at a well-known
// address that, for each Ping, connects to the target and relays. Create
// one with NewOutlet; it is safe for concurrent use.
type Outlet struct {
	cfg    OutletConfig
	node   *node.Node
	addr   routing.Address
	log    *slog.Logger
	stats  counters
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	// refusing bounds the goroutines answering Pings over MaxConns: a
	// flood of Pings whose answers cannot be delivered must not hold one
	// goroutine (and a mailbox) per Ping. Over it, Pings go unanswered.
	refusing chan struct{}
	watch    connWatch
	bad      rate.Sometimes
	// unreach rate-limits the log of answers to unreachable targets or
	// over the limit, which a flood of Pings would otherwise repeat.
	unreach rate.Sometimes
	once    sync.Once
	// keepAlive: the default dialer leaves keep-alive to open.
	keepAlive bool
	// mu orders the portals started by Pings (handled in the goroutines
	// that deliver them: the outlet is an inline worker) before Close's
	// wait: once closed, none starts.
	mu     sync.Mutex
	closed bool
}

// NewOutlet starts an outlet on n at cfg.Name.
func NewOutlet(n *node.Node, cfg OutletConfig) (*Outlet, error) {
	if cfg.Target == "" {
		return nil, errors.New("portal: outlet needs a target")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultOutletName
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	keepAlive := false
	if cfg.Dial == nil {
		// Keep-alive (the Go default: 15 s, 9 probes) is set after the
		// Pong: four system calls fewer before it.
		d := &net.Dialer{KeepAlive: -1}
		cfg.Dial = d.DialContext
		keepAlive = true
	}
	cfg.Options = cfg.Options.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Outlet{cfg: cfg, node: n, log: log.With("outlet", cfg.Name), ctx: ctx, cancel: cancel, keepAlive: keepAlive,
		bad: rate.Sometimes{First: 5, Interval: 10 * time.Second}, unreach: rate.Sometimes{First: 10, Interval: time.Second}}
	if cfg.MaxConns > 0 {
		o.sem = make(chan struct{}, cfg.MaxConns)
		o.refusing = make(chan struct{}, maxRefusing)
	}
	// An inline worker: a Ping is checked in the goroutine that delivers
	// it, which then starts the portal's goroutine (no hand-off through a
	// mailbox on the way to a new portal).
	addrs, err := n.StartWorkerConfig(context.Background(), node.HandlerFunc(o.handle), node.WorkerConfig{Addresses: []string{cfg.Name}, Inline: true})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("portal: starting outlet %q: %w", cfg.Name, err)
	}
	o.addr = addrs[0]
	return o, nil
}

// Address returns the outlet's local address.
func (o *Outlet) Address() routing.Address { return o.addr }

// Stats returns the outlet's counters.
func (o *Outlet) Stats() Stats { return o.stats.snapshot() }

// Close stops the outlet: no new portals; open ones send Disconnect and
// close. It waits for them and is idempotent.
func (o *Outlet) Close() error {
	o.once.Do(func() {
		o.node.StopWorker(context.Background(), o.addr.Value)
		o.mu.Lock()
		o.closed = true
		o.mu.Unlock()
		o.cancel()
	})
	o.wg.Wait()
	return nil
}

// handle handles a message to the outlet's address, in the goroutine that
// delivers it. m is valid only until it returns: what a portal keeps of it
// is its return route, which is not reused (node.WorkerConfig.Inline).
func (o *Outlet) handle(_ context.Context, _ node.Sender, m *node.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.ping(m)
	}
	return nil
}

func (o *Outlet) refuse(m *node.Message, why string) {
	o.bad.Do(func() {
		o.log.Warn("portal: refused a message at the outlet", "from", m.Return().String(), "reason", why)
	})
}

// ping checks a handshake message and starts its portal; o.mu is held.
// It never waits.
func (o *Outlet) ping(m *node.Message) {
	if len(m.Onward()) != 1 || len(m.Return()) == 0 {
		o.refuse(m, "route continues past the outlet, or no return route")
		return
	}
	p := m.Payload()
	var early *earlyPing
	if o.cfg.Generation == G2 {
		// A Ping with early data is a handshake too (an inlet that knew
		// this route's outlet as one that takes early data): it keeps its
		// bytes, since a G2 answer cannot acknowledge them.
		if len(p) != 1 || p[0] != 0 {
			if msg, err := DecodeG3(p, false); err != nil || msg.Tag != TagPing || !msg.Early {
				o.refuse(m, "not a G2 handshake")
				return
			}
		}
	} else if msg, err := DecodeG3(p, false); err != nil || msg.Tag != TagPing {
		// A Rust G3 listener ignores anything but a Ping (portals.md §6.3).
		o.refuse(m, "not a Ping")
		return
	} else if msg.Early && !o.cfg.Options.NoExtension {
		// m is valid only until this returns.
		early = &earlyPing{window: msg.Offset, data: append([]byte(nil), msg.Data...)}
	}
	if o.cfg.Authorize != nil && !o.cfg.Authorize(m) {
		o.refuse(m, "not authorized")
		return
	}
	// The route to the inlet is the Ping's return route as received, taken
	// once (portals.md §3).
	route := m.Return()
	if o.sem != nil {
		select {
		case o.sem <- struct{}{}:
		default:
			select {
			case o.refusing <- struct{}{}:
			default:
				o.stats.failed.Add(1)
				o.refuse(m, "over the connection limit, and too many refusals pending")
				return
			}
			o.unreach.Do(func() {
				o.log.Warn("portal: refused a connection over the limit", "from", route.String(), "max", o.cfg.MaxConns)
			})
			o.wg.Go(func() {
				defer func() { <-o.refusing }()
				o.unreachable(route, ErrLimit)
			})
			return
		}
	}
	o.wg.Go(func() {
		if o.sem != nil {
			defer func() { <-o.sem }()
		}
		o.open(route, early)
	})
}

// earlyPing is what a Ping in the early-data form brings: the inlet's
// window and the client's first bytes.
type earlyPing struct {
	window uint64
	data   []byte
}

// open connects to the target first, writes what it can of the inlet's
// early data, then answers (portals.md §12.4).
func (o *Outlet) open(route routing.Route, early *earlyPing) {
	dctx, cancel := context.WithTimeout(o.ctx, o.cfg.DialTimeout)
	nc, err := o.cfg.Dial(dctx, "tcp", o.cfg.Target)
	cancel()
	if err != nil {
		o.unreachable(route, err)
		return
	}
	// The early bytes go to the target first thing: its answer, which the
	// inlet waits for, is then on its way while the portal is set up.
	took := 0
	if early != nil && len(early.data) > 0 {
		if rc := directConn(nc); rc != nil {
			took = tryWrite(rc, early.data[:min(len(early.data), o.cfg.Options.Window)])
		}
	}
	var budget *Budget
	if o.cfg.Budget != nil {
		budget = o.cfg.Budget(route)
	}
	c := newPConn(o.node, nc, "outlet", o.cfg.Generation, route, budget, o.log, o.cfg.Options, &o.stats)
	c.watch = &o.watch
	var pong []byte
	if o.cfg.Generation == G2 {
		pong = G2Handshake
	} else {
		var ext *Extension
		if !o.cfg.Options.NoExtension {
			ext = &Extension{Version: ExtensionVersion, Window: uint64(o.cfg.Options.Window)}
			c.extOffered = true
			c.granted = ext.Window
			ext.Features = FeatureEarlyData
			if early != nil {
				// The inlet speaks the extension and has granted its
				// window: no Credit will come to say so.
				c.ext = true
				c.sendLimit, c.peerWindow = early.window, early.window
				c.capSure = true
				// What the target took at once of the early bytes is the
				// stream's first bytes; the Pong tells the inlet how many,
				// and it sends the rest as Data (so does it all when this
				// platform cannot write without waiting).
				ext.Early = uint64(took)
				c.recvd, c.written = ext.Early, ext.Early
				o.stats.bytesOut.Add(ext.Early)
			}
		}
		pong = AppendPong(nil, ext)
	}
	if err := c.register(); err != nil {
		nc.Close()
		return
	}
	if err := c.send(pong, false); err != nil {
		o.log.Warn("portal: answering a Ping", "to", route.String(), "err", err)
		c.unregister()
		nc.Close()
		c.cancel()
		c.wg.Wait()
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok && o.keepAlive {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
	}
	c.run(o.ctx, false)
}

// unreachable answers a Ping whose target cannot be reached: G3 Pong then
// Disconnect, from a fresh address, the only sequence that makes a Rust G3
// inlet close its client (portals.md §12.4); G2 has no way to say it.
func (o *Outlet) unreachable(route routing.Route, err error) {
	o.stats.failed.Add(1)
	o.unreach.Do(func() {
		o.log.Warn("portal: target unreachable", "target", o.cfg.Target, "inlet", route.String(), "err", err)
	})
	if o.cfg.Generation == G2 {
		return
	}
	mb, merr := o.node.OpenMailbox("")
	if merr != nil {
		return
	}
	defer mb.Close()
	ctx, cancel := context.WithTimeout(o.ctx, 10*time.Second)
	defer cancel()
	var budget *Budget
	if o.cfg.Budget != nil {
		budget = o.cfg.Budget(route)
	}
	if !budget.take(false) || mb.SendFrom(ctx, mb.Address(), route, node.Raw(AppendPong(nil, nil))) != nil {
		return
	}
	if budget.take(true) {
		mb.SendFrom(ctx, mb.Address(), route, node.Raw(AppendDisconnect(nil, -1)))
	}
}
