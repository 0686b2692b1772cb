package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/routing"
)

// DefaultMailboxSize is the mailbox bound used when neither the node nor
// the worker sets one.
const DefaultMailboxSize = 256

// AppAddress is the address of the node's own mailbox, from which Send sends
// and at which Receive receives, as the Rust root context "app".
const AppAddress = "app"

// Config configures a Node. The zero value is usable.
type Config struct {
	// Logger receives worker errors and dropped messages; nil discards.
	Logger *slog.Logger
	// MailboxSize is the default mailbox bound; 0 means DefaultMailboxSize.
	MailboxSize int
	// ControlPing makes the node answer the Elixir control ping (an empty
	// onward route with payload 0x00) with 0x01, as the Elixir Hub did.
	ControlPing bool
	// NoApp skips opening the "app" mailbox (hubs have no application).
	NoApp bool
}

// Transport carries messages whose next hop has a non-local address type.
// RouteMessage receives a message whose onward route starts with an address
// of the transport's type; it removes that hop and delivers the rest
// (protocol.md §6.3). It must be safe for concurrent use.
type Transport interface {
	RouteMessage(ctx context.Context, m routing.TransportMessage) error
}

// Stats are counters of a node's routing, read with Node.Stats.
type Stats struct {
	Routed       uint64 // messages routed to a worker or transport
	Unroutable   uint64 // messages for unknown addresses or transports
	WorkerErrors uint64 // errors returned by HandleMessage
	Workers      int    // workers running now
}

// Node hosts workers and routes messages. Create one with New; it is safe
// for concurrent use. Close stops every worker and waits for them.
type Node struct {
	cfg Config
	log *slog.Logger

	// The registries are read on every message by every connection, so
	// reads take no lock: workers is a sync.Map, transports an immutable map
	// replaced whole. mu serialises writers and guards closed.
	mu         sync.Mutex
	workers    sync.Map // local address value (string) -> *entry: a string key hashes faster than an Address
	nworkers   int      // guarded by mu
	transports atomic.Pointer[map[routing.Type]Transport]
	closed     bool
	isClosed   atomic.Bool

	app *Mailbox
	wg  sync.WaitGroup

	// routed counts messages to transports, and those to workers that
	// have stopped; each worker counts its own (no cache line shared by
	// every connection), summed by Stats.
	routed, unroutable, workerErrors atomic.Uint64
	errLog                           rate.Sometimes

	gone gone // addresses of recently stopped workers
}

// New returns a running node.
func New(cfg Config) *Node {
	if cfg.MailboxSize <= 0 {
		cfg.MailboxSize = DefaultMailboxSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:    cfg,
		log:    log,
		errLog: rate.Sometimes{First: 10, Interval: time.Second},
	}
	if !cfg.NoApp {
		mb, err := n.OpenMailbox(AppAddress)
		if err != nil {
			panic(err) // unreachable: the node is new and empty
		}
		n.app = mb
	}
	return n
}

// Logger returns the node's logger (never nil).
func (n *Node) Logger() *slog.Logger { return n.log }

// RandomAddress returns a local address of nbytes random bytes in lowercase
// hex: 16 bytes (32 chars) like the Rust nodes, 4 bytes (8 chars) like the
// Elixir Hub.
func RandomAddress(nbytes int) string {
	b := make([]byte, nbytes)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// lookup returns the worker at a, or nil.
func (n *Node) lookup(a routing.Address) *entry {
	if v, ok := n.workers.Load(a.Value); ok {
		return v.(*entry)
	}
	return nil
}

// transportMap returns the current transports (never to be modified).
func (n *Node) transportMap() map[routing.Type]Transport {
	if m := n.transports.Load(); m != nil {
		return *m
	}
	return nil
}

// RegisterTransport makes t carry messages whose next hop has type typ.
func (n *Node) RegisterTransport(typ routing.Type, t Transport) error {
	if typ == routing.Local {
		return fmt.Errorf("node: cannot register a transport for local addresses")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	old := n.transportMap()
	if _, ok := old[typ]; ok {
		return fmt.Errorf("node: transport type %d: %w", typ, ErrAddressInUse)
	}
	m := maps.Clone(old)
	if m == nil {
		m = make(map[routing.Type]Transport)
	}
	m[typ] = t
	n.transports.Store(&m)
	return nil
}

// UnregisterTransport removes the transport for typ, if any.
func (n *Node) UnregisterTransport(typ routing.Type) {
	n.mu.Lock()
	m := maps.Clone(n.transportMap())
	delete(m, typ)
	n.transports.Store(&m)
	n.mu.Unlock()
}

// StartWorker starts w at the local address addr ("" for a random one). It
// returns once w's Initialize hook, if any, has succeeded; if ctx ends first,
// the worker is stopped and ctx's error returned.
func (n *Node) StartWorker(ctx context.Context, addr string, w Worker) error {
	_, err := n.StartWorkerConfig(ctx, w, WorkerConfig{Addresses: []string{addr}})
	return err
}

// StartWorkerConfig starts w as cfg says and returns its addresses, the
// primary one first.
func (n *Node) StartWorkerConfig(ctx context.Context, w Worker, cfg WorkerConfig) ([]routing.Address, error) {
	names := cfg.Addresses
	if len(names) == 0 {
		names = []string{""}
	}
	addrs := make([]routing.Address, len(names))
	for i, s := range names {
		if s == "" {
			s = RandomAddress(16)
		}
		addrs[i] = routing.LocalAddress(s)
	}
	size := cfg.MailboxSize
	if size <= 0 {
		size = n.cfg.MailboxSize
	}
	e := &entry{node: n, worker: w, addrs: addrs, inline: cfg.Inline, quit: make(chan struct{}), done: make(chan struct{})}
	var wctx context.Context
	if !cfg.Inline {
		e.mailbox = make(chan *Message, size)
		// The worker's context exists before the entry is published, so
		// that a concurrent stop always finds its cancel function.
		wctx, e.cancel = context.WithCancel(context.Background())
	}
	if err := n.register(e, !cfg.Inline); err != nil {
		if e.cancel != nil {
			e.cancel()
		}
		return nil, err
	}
	if cfg.Inline {
		if in, ok := w.(Initializer); ok {
			if err := in.Initialize(ctx, e); err != nil {
				e.gone.Store(true)
				n.unregister(e)
				close(e.done)
				return nil, fmt.Errorf("node: initializing worker %s: %w", addrs[0], err)
			}
		}
		return addrs, nil
	}
	started := make(chan error, 1)
	go func() { defer n.wg.Done(); e.run(wctx, started) }()
	select {
	case err := <-started:
		if err != nil {
			return nil, fmt.Errorf("node: initializing worker %s: %w", addrs[0], err)
		}
	case <-ctx.Done():
		// Initialize is taking too long for the caller: stop the worker,
		// which cancels the context Initialize was given.
		e.stop()
		return nil, fmt.Errorf("node: initializing worker %s: %w", addrs[0], ctx.Err())
	}
	return addrs, nil
}

// register publishes e at its addresses. With goroutine set it also counts
// the goroutine the caller will start for e (which must call n.wg.Done), under
// the same lock as the closed check, so that Close's Wait never races an Add.
func (n *Node) register(e *entry, goroutine bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	for _, a := range e.addrs {
		if _, ok := n.workers.Load(a.Value); ok {
			return fmt.Errorf("node: starting worker at %s: %w", a, ErrAddressInUse)
		}
	}
	for _, a := range e.addrs {
		n.workers.Store(a.Value, e)
	}
	n.nworkers++
	if goroutine {
		n.wg.Add(1)
	}
	return nil
}

func (n *Node) unregister(e *entry) {
	n.mu.Lock()
	removed := false
	for _, a := range e.addrs {
		removed = n.workers.CompareAndDelete(a.Value, e) || removed
	}
	if removed {
		n.nworkers--
		n.routed.Add(e.routed.Load())
	}
	n.mu.Unlock()
	if removed {
		now := time.Now()
		for _, a := range e.addrs {
			n.gone.add(a.Value, now)
		}
	}
}

// StopWorker stops the worker at addr (any of its addresses) and waits until
// its Shutdown hook has run. Messages still in its mailbox are dropped.
func (n *Node) StopWorker(ctx context.Context, addr string) error {
	e := n.lookup(routing.LocalAddress(addr))
	if e == nil {
		return &RouteError{Addr: routing.LocalAddress(addr), Err: ErrUnknownAddress}
	}
	e.stop()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HasWorker reports whether a worker or mailbox is registered at addr.
func (n *Node) HasWorker(addr string) bool {
	_, ok := n.workers.Load(addr)
	return ok
}

// Send sends v from the "app" mailbox to route.
func (n *Node) Send(ctx context.Context, route routing.Route, v any) error {
	if n.app == nil {
		return fmt.Errorf("node: no app mailbox: %w", ErrClosed)
	}
	return n.app.Send(ctx, route, v)
}

// Receive waits for the next message at the "app" mailbox.
func (n *Node) Receive(ctx context.Context) (*Message, error) {
	if n.app == nil {
		return nil, fmt.Errorf("node: no app mailbox: %w", ErrClosed)
	}
	return n.app.Receive(ctx)
}

// App returns the node's "app" mailbox (nil with Config.NoApp).
func (n *Node) App() *Mailbox { return n.app }

// Route routes m by the head of its onward route (protocol.md §6.2). A local
// worker's mailbox that is full makes Route wait until ctx ends.
func (n *Node) Route(ctx context.Context, m routing.TransportMessage) error {
	ctx, room := unmarkRoom(ctx) // for the worker m goes to (PayloadRoom), and no further
	next, ok := m.Onward.Next()
	if !ok {
		if n.cfg.ControlPing && len(m.Payload) == 1 && m.Payload[0] == 0 && len(m.Return) > 0 {
			return n.Route(ctx, routing.TransportMessage{Version: routing.Version, Onward: m.Return, Payload: []byte{1}})
		}
		n.unroutable.Add(1)
		return ErrEmptyRoute
	}
	if next.Type != routing.Local {
		t, ok := n.transportMap()[next.Type]
		if n.isClosed.Load() {
			return ErrClosed
		}
		if !ok {
			n.unroutable.Add(1)
			return &RouteError{Addr: next, Err: ErrNoTransport}
		}
		n.routed.Add(1)
		return t.RouteMessage(ctx, m)
	}
	e := n.lookup(next)
	if e == nil {
		n.unroutable.Add(1)
		return &RouteError{Addr: next, Err: ErrUnknownAddress}
	}
	e.routed.Add(1)
	if e.inline {
		// An inline worker has the message only while HandleMessage runs
		// (WorkerConfig.Inline): the Message is reused.
		msg := messagePool.Get().(*Message)
		msg.tm, msg.at, msg.pooled = m, next, true
		// The transport's own message, straight from its reader: the
		// payload is this worker's (ExclusivePayload), and what the worker
		// routes in turn is not.
		ctx, msg.exclusive = unmarkExclusive(ctx)
		msg.room = room
		return e.deliver(ctx, msg)
	}
	return e.deliver(ctx, &Message{tm: m, at: next, room: room})
}

type beforeBlockKey struct{}

// WithBeforeBlock returns a copy of ctx carrying f, which Route (and a
// worker's Send or Forward given that context) calls before it waits for
// room in a full mailbox. A transport's reading goroutine uses it to write
// what it has deferred, so that nothing it holds back waits on a mailbox.
func WithBeforeBlock(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, beforeBlockKey{}, f)
}

// BeforeBlock calls the function WithBeforeBlock put in ctx, if any. A
// worker that is about to wait for room in a queue of its own (as Route
// waits for a full mailbox) calls it first, so that the goroutine that
// delivered the message (a transport's reader) writes what it deferred
// before it waits.
func BeforeBlock(ctx context.Context) {
	if f, ok := ctx.Value(beforeBlockKey{}).(func()); ok {
		f()
	}
}

// messagePool recycles the Messages given to inline workers.
var messagePool = sync.Pool{New: func() any { return new(Message) }}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	workers := n.nworkers
	routed := n.routed.Load()
	n.workers.Range(func(k, v any) bool {
		if e := v.(*entry); k.(string) == e.addrs[0].Value {
			routed += e.routed.Load()
		}
		return true
	})
	n.mu.Unlock()
	return Stats{
		Routed:       routed,
		Unroutable:   n.unroutable.Load(),
		WorkerErrors: n.workerErrors.Load(),
		Workers:      workers,
	}
}

// Close stops every worker and mailbox and returns when all of their
// goroutines have ended. It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	n.closed = true
	n.isClosed.Store(true)
	entries := make(map[*entry]bool, n.nworkers)
	n.workers.Range(func(_, v any) bool {
		entries[v.(*entry)] = true
		return true
	})
	n.mu.Unlock()
	for e := range entries {
		e.stop()
	}
	n.wg.Wait()
	return nil
}

func (n *Node) logWorkerError(addr routing.Address, err error) {
	n.workerErrors.Add(1)
	n.errLog.Do(func() {
		n.log.Warn("worker error", "worker", addr.String(), "err", err)
	})
}

// entry is a registered worker.
type entry struct {
	node    *Node
	worker  Worker
	addrs   []routing.Address
	inline  bool
	mailbox chan *Message // nil when inline
	quit    chan struct{} // closed by stop
	cancel  context.CancelFunc
	once    sync.Once
	done    chan struct{} // closed when the worker has stopped
	routed  atomic.Uint64 // messages routed to this worker
	// gone is set before quit is closed, or before an inline worker
	// whose Initialize failed is unregistered: it is no longer at its
	// addresses (Recheck reads it on every relayed frame: one load).
	gone atomic.Bool
}

func (e *entry) stop() {
	e.once.Do(func() {
		e.gone.Store(true)
		close(e.quit)
		if e.cancel != nil {
			e.cancel()
		}
		if e.inline {
			e.node.unregister(e)
			if sd, ok := e.worker.(Shutdowner); ok {
				// Run the hook here, in the stopping goroutine: inline
				// workers' hooks must not block.
				if err := sd.Shutdown(context.Background()); err != nil {
					e.node.logWorkerError(e.addrs[0], err)
				}
			}
			close(e.done)
		}
	})
}

func (e *entry) deliver(ctx context.Context, m *Message) error {
	if e.inline {
		select {
		case <-e.quit:
			return &RouteError{Addr: m.at, Err: ErrUnknownAddress}
		default:
		}
		if err := e.worker.HandleMessage(ctx, e, m); err != nil {
			e.node.logWorkerError(m.at, err)
		}
		if m.pooled {
			*m = Message{}
			messagePool.Put(m)
		}
		return nil
	}
	select {
	case e.mailbox <- m:
		return nil
	default:
	}
	// The mailbox is full: let the caller do what must not wait behind it.
	BeforeBlock(ctx)
	select {
	case e.mailbox <- m:
		return nil
	case <-e.quit:
		return &RouteError{Addr: m.at, Err: ErrUnknownAddress}
	case <-ctx.Done():
		return &RouteError{Addr: m.at, Err: fmt.Errorf("%w: %w", ErrMailboxFull, ctx.Err())}
	}
}

// run is the worker's goroutine; ctx is cancelled by stop.
func (e *entry) run(ctx context.Context, started chan<- error) {
	defer close(e.done)
	defer e.cancel()
	if in, ok := e.worker.(Initializer); ok {
		if err := in.Initialize(ctx, e); err != nil {
			e.node.unregister(e)
			started <- err
			return
		}
	}
	started <- nil
	defer func() {
		e.node.unregister(e)
		if sd, ok := e.worker.(Shutdowner); ok {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			if err := sd.Shutdown(sctx); err != nil {
				e.node.logWorkerError(e.addrs[0], err)
			}
		}
	}()
	for {
		select {
		case <-e.quit:
			return
		case m := <-e.mailbox:
			if err := e.worker.HandleMessage(ctx, e, m); err != nil {
				e.node.logWorkerError(m.at, err)
			}
		}
	}
}

// entry implements Sender for its worker.

func (e *entry) Address() routing.Address { return e.addrs[0] }
func (e *entry) Node() *Node              { return e.node }

func (e *entry) Send(ctx context.Context, route routing.Route, v any) error {
	return e.SendFrom(ctx, e.addrs[0], route, v)
}

func (e *entry) SendFrom(ctx context.Context, from routing.Address, route routing.Route, v any) error {
	return e.node.send(ctx, from, route, v)
}

func (e *entry) Forward(ctx context.Context, m routing.TransportMessage) error {
	return e.node.Route(ctx, m)
}

func (n *Node) send(ctx context.Context, from routing.Address, route routing.Route, v any) error {
	if len(route) == 0 {
		return ErrEmptyRoute
	}
	payload, err := encodePayload(v)
	if err != nil {
		return fmt.Errorf("node: encoding message for %s: %w", route, err)
	}
	return n.Route(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  route,
		Return:  routing.Route{from},
		Payload: payload,
	})
}
