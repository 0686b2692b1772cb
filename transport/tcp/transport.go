package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Defaults for Config fields left zero.
const (
	DefaultSendQueueSize  = 1024
	DefaultSendQueueBytes = 1 << 20
	DefaultFrameTimeout   = 10 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultConnectSettle  = 10 * time.Millisecond
)

// Config configures a Transport. The zero value is usable: full-size frames,
// senders that wait while a connection's queue is full, no connection limits
// and no idle timeout.
type Config struct {
	// Logger receives connection events; nil discards.
	Logger *slog.Logger
	// MaxFrameSize bounds frame bodies in both directions; 0 or more than
	// 65535 means 65535. A larger message is refused with ErrFrameTooLarge
	// when sent, and closes the connection when received.
	MaxFrameSize int
	// SendQueueSize bounds the messages waiting to be written on each
	// connection; 0 means DefaultSendQueueSize.
	SendQueueSize int
	// SendQueueBytes bounds the encoded bytes waiting on each connection,
	// so that a peer that stops reading holds at most this much memory (a
	// message whose frame lies in a reused buffer, Config.ReuseBodies,
	// counts as the whole buffer);
	// 0 means DefaultSendQueueBytes.
	SendQueueBytes int
	// QueueFullWait chooses what happens when a connection's send queue is
	// full. Zero makes the sender wait for room for as long as its context
	// allows (back pressure: right for client programs). A positive
	// duration waits at most that long, then drops the message and counts
	// it: a hub uses this, so that a peer that keeps up slowly still gets
	// everything (TCP back pressure reaches the sender), while a peer that
	// has stopped reading costs its senders at most this delay per message.
	// A negative value drops at once when the queue is full.
	QueueFullWait time.Duration
	// FrameTimeout bounds how long a frame may take to arrive once its first
	// byte has (slow-loris protection); 0 means DefaultFrameTimeout.
	FrameTimeout time.Duration
	// IdleTimeout closes a connection that neither receives nor sends
	// anything for this long;
	// 0 means never.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to the socket; 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxConns limits open connections (accepted and dialled); 0 means no
	// limit. Connections over the limit are closed at once and counted.
	MaxConns int
	// MaxConnsPerIP limits accepted connections from one source IP (for
	// IPv6, from one /64); 0 means no limit.
	MaxConnsPerIP int
	// ConnectSettle makes Connect wait this long after dialling before it
	// returns, so that the first message is not sent the instant the
	// connection opens: a 2021 Rust listener registers a new connection
	// with its router only after starting to read from it, and a reply sent
	// in that window is lost (protocol.md §7.1, 1-4% of first exchanges).
	// 0 means no wait; DefaultConnectSettle suits programs that talk to
	// Rust nodes.
	ConnectSettle time.Duration
	// MessageRate limits the messages read from each connection per
	// second (a token bucket of MessageBurst); 0 means no limit. A peer
	// over the limit is not cut off: the transport stops reading from it
	// until tokens return, so TCP back pressure slows it down.
	MessageRate  float64
	MessageBurst int
	// ReuseBodies lets the transport reuse the memory of large frames (16
	// KiB and more) once the message is handled: the frame is read into a
	// pooled buffer, and the buffer goes back to the pool when the routing
	// of the message has returned and every send made
	// meanwhile by the reading goroutine (to this transport's connections)
	// has been written. It saves allocating, zeroing and collecting 64 KiB
	// per large frame. Set it only for a node none of whose workers keeps a
	// message (or its payload, or an address of its routes: their values
	// lie in the frame) after HandleMessage returns, other than by
	// sending it on: inline relays such as a hub's echo and forwarders. A
	// worker with a mailbox, or one that keeps payloads, would see them
	// overwritten.
	ReuseBodies bool
	// CutThrough lets the transport relay a large frame (16 KiB and more)
	// from one of its connections to another without reading its payload
	// into memory: on Linux, when the frame's head shows that the message
	// would leave through another connection of this transport, through
	// inline workers that only rewrite its route (node.RouteRewriter, such
	// as a hub's forwarders) and a connection's alias or address, and that
	// connection has nothing queued and nobody writing to it, the head is
	// re-encoded and written, and the payload moved from socket to socket
	// with splice(2) through a pipe (see cut.go). The bytes written are
	// those the message would have been written as; counters and limits
	// are the same. Nothing is written before the whole payload has
	// arrived; in every other case the frame takes the usual path.
	// Elsewhere than on Linux it does nothing for large frames. On every
	// system it also relays smaller frames that arrive whole, on such a
	// path, by their bytes: the outgoing frame is queued (with its head
	// re-encoded once per stream of frames with the same routes) without
	// decoding the message, calling the rewriters' HandleMessage or
	// encoding it again when written (see relay.go). Hubs set it.
	CutThrough bool
	// NoSplice turns off splicing large payloads into the workers that
	// take them so (node.SpliceSink, such as a TCP portal, which writes a
	// payload's bytes to its local socket): on Linux, the payload of a
	// frame of 16 KiB or more for such a worker is otherwise moved from
	// this transport's socket to the worker's with splice(2) through a
	// pipe, without reaching user space, when the worker can take it at
	// once (see sink_linux.go). The worker's peer sees no difference.
	NoSplice bool
	// Aliases names each accepted connection by a random local address of
	// 16 hex digits (64 random bits, so that it cannot be guessed; the
	// Elixir Hub used 8), instead of 1#<peer ip:port> as the Rust nodes do. The alias is what the peer's messages carry in their
	// return route, so it reaches other peers (through forwarders): it hides
	// the peer's IP and port from them, and it means no route from the
	// network can name a connection by ip:port. Hubs set it.
	Aliases bool
	// Allow lists the source networks whose connections are accepted;
	// empty admits everyone. A connection from elsewhere is closed at
	// accept and counted. SetAllow replaces it while running.
	Allow []netip.Prefix
	// Budget, when set, is shared with other transports of the process:
	// every connection takes one unit, and when none is left new
	// connections are closed at once and counted.
	Budget *Budget
	// ProbeBurst, ProbeRate, ProbeDelay and ProbeStrikes damp address
	// probing: a connection may send ProbeBurst messages to addresses that
	// do not exist, and ProbeRate more per second; past that, each such
	// message holds its reader for ProbeDelay, and after ProbeStrikes of
	// these the connection is closed and counted. ProbeBurst 0 turns
	// damping off (hubs turn it on, see DefaultProbeBurst).
	ProbeBurst   int
	ProbeRate    float64
	ProbeDelay   time.Duration
	ProbeStrikes int
}

// Stats are a transport's counters, read with Transport.Stats.
type Stats struct {
	Conns         int64  // open connections
	Accepted      uint64 // connections accepted
	Dialled       uint64 // connections dialled
	Refused       uint64 // connections refused by a limit or the allow-list: the sum of the next four
	RefusedCap    uint64 // refused by MaxConns
	RefusedPerIP  uint64 // refused by MaxConnsPerIP
	RefusedBudget uint64 // refused because the shared Budget was spent
	RefusedAllow  uint64 // refused by the allow-list
	AllowClosed   uint64 // open connections closed because SetAllow no longer admits them
	AcceptErrors  uint64 // failed accepts (out of descriptors), each followed by a backoff
	Heartbeats    uint64 // heartbeat frames (00 04 01 00 00 00) received and dropped
	ProbeDelayed  uint64 // messages to nonexistent addresses beyond the allowance, each delayed
	ProbeClosed   uint64 // connections closed for probing nonexistent addresses
	FramesIn      uint64
	FramesOut     uint64
	BytesIn       uint64
	BytesOut      uint64
	DecodeErrors  uint64 // bad frames (connection closed): the sum of the next three
	Malformed     uint64 // frames whose TransportMessage did not decode
	EmptyFrames   uint64 // zero-length frames
	Oversized     uint64 // frames longer than MaxFrameSize
	Queued        int    // messages waiting in send queues now
	Unroutable    uint64 // received messages dropped: unknown worker, empty route
	NoConnection  uint64 // messages for a type-1 address with no connection
	QueueFull     uint64 // messages dropped on a full send queue
	TooLarge      uint64 // messages refused for exceeding the frame size
	FrameTimeouts uint64 // connections closed for a partial frame timing out
	Throttled     uint64 // reads delayed by the per-connection message rate
	CutThrough    uint64 // large frames relayed with their payload spliced (Config.CutThrough); also in FramesIn/Out
	PipeTails     uint64 // frames sent with their payload's end spliced from a sender's pipe (node.PipeTail); also in FramesOut
	Spliced       uint64 // large frames whose payload was spliced into a worker's socket (node.SpliceSink; Config.NoSplice); also in FramesIn
	// RelayLatency samples one message in 16: the time from being handed
	// to a connection (by a worker, a forwarder, the echo service) until
	// written to its socket, queueing included.
	RelayLatency Histogram
}

// Transport is the TCP transport of one node. It registers itself with the
// node for address type 1. Create it with New; it is safe for concurrent
// use.
type Transport struct {
	node *node.Node
	cfg  Config
	log  *slog.Logger

	conns     sync.Map // routing.Address (1#name, or 0#alias) -> *conn
	live      sync.Map // *conn -> struct{}: connections whose counters are not yet in stats
	nconns    atomic.Int64
	dialMu    sync.Mutex
	dialing   map[string]*sync.Mutex // per name dialled: one dial at a time
	perIPMu   sync.Mutex
	perIP     map[string]int
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	closed    bool
	draining  chan struct{} // closed by Shutdown: writers flush and close
	stop      chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	stats struct {
		accepted, dialled, refused             atomic.Uint64
		framesIn, framesOut, bytesIn, bytesOut atomic.Uint64 // of retired connections

		malformed, empty, oversized, unroutable, noConn, queueFull, tooLarge, timeouts, throttled, cut, tails, spliced atomic.Uint64
		allowClosed, acceptErrors, heartbeats, probeDelayed, probeClosed                                               atomic.Uint64
	}
	statsMu   sync.Mutex // Stats and retire: a connection is counted once
	sometimes rate.Sometimes
	latency   histogram

	allow     atomic.Pointer[allowList]
	acceptLog rate.Sometimes
	admit     struct {
		cap, perIP, budget, allow atomic.Uint64
	}
}

// New returns a transport for n and registers it for address type 1.
func New(n *node.Node, cfg Config) (*Transport, error) {
	if cfg.MaxFrameSize <= 0 || cfg.MaxFrameSize > MaxFrameSize {
		cfg.MaxFrameSize = MaxFrameSize
	}
	if cfg.SendQueueSize <= 0 {
		cfg.SendQueueSize = DefaultSendQueueSize
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = DefaultSendQueueBytes
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = DefaultFrameTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		node:      n,
		cfg:       cfg,
		log:       log,
		perIP:     make(map[string]int),
		listeners: make(map[net.Listener]struct{}),
		draining:  make(chan struct{}),
		stop:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		sometimes: rate.Sometimes{First: 5, Interval: time.Second},
		acceptLog: rate.Sometimes{Interval: time.Second},
	}
	if len(cfg.Allow) > 0 {
		l := newAllowList(cfg.Allow)
		t.allow.Store(&l)
	}
	if cfg.ProbeBurst > 0 {
		if cfg.ProbeRate <= 0 {
			t.cfg.ProbeRate = DefaultProbeRate
		}
		if cfg.ProbeDelay <= 0 {
			t.cfg.ProbeDelay = DefaultProbeDelay
		}
		if cfg.ProbeStrikes <= 0 {
			t.cfg.ProbeStrikes = DefaultProbeStrikes
		}
	}
	if err := n.RegisterTransport(routing.TCP, t); err != nil {
		cancel()
		return nil, err
	}
	return t, nil
}

// Serve accepts connections on l until Close or Shutdown, and then returns
// ErrClosed; any other accept failure is returned as is. The caller owns l
// until Serve returns; Close and Shutdown close it.
func (t *Transport) Serve(l net.Listener) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	t.listeners[l] = struct{}{}
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.listeners, l)
		t.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if t.isClosed() {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTemporary(err)) {
				if !t.acceptBackoff(err, &delay) {
					return ErrClosed
				}
				continue
			}
			return err
		}
		delay = 0
		if _, err := t.add(nc, nc.RemoteAddr().String(), true); err != nil {
			t.logSometimes("connection refused", "peer", nc.RemoteAddr().String(), "err", err)
		}
	}
}

// errTemporary reports accept errors worth retrying (too many open files).
func errTemporary(err error) error {
	var se interface{ Temporary() bool }
	if errors.As(err, &se) && se.Temporary() {
		return err
	}
	return errNever
}

var errNever = errors.New("never")

// Connect dials hostport ("127.0.0.1:4000", "[::1]:4000" or
// "hub.example:4000") and returns the type-1 address that routes through the
// connection: 1#hostport, exactly as given. If a connection under that name
// is already open, Connect returns it without dialling.
func (t *Transport) Connect(ctx context.Context, hostport string) (routing.Address, error) {
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return routing.Address{}, fmt.Errorf("tcp: connect %q: %w", hostport, err)
	}
	// Concurrent Connects to one name share one dial, so that a second
	// connection never replaces the first (and its queued messages).
	t.dialMu.Lock()
	if t.dialing == nil {
		t.dialing = make(map[string]*sync.Mutex)
	}
	mu := t.dialing[hostport]
	if mu == nil {
		mu = new(sync.Mutex)
		t.dialing[hostport] = mu
	}
	t.dialMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if c, ok := t.conns.Load(routing.TCPAddress(hostport)); ok && !c.(*conn).isClosed() {
		return c.(*conn).addr, nil
	}
	if t.isClosed() {
		return routing.Address{}, ErrClosed
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return routing.Address{}, fmt.Errorf("tcp: connect %s: %w", hostport, err)
	}
	c, err := t.add(nc, hostport, false)
	if err != nil {
		return routing.Address{}, err
	}
	if t.cfg.ConnectSettle > 0 {
		timer := time.NewTimer(t.cfg.ConnectSettle)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return routing.Address{}, ctx.Err()
		}
	}
	return c.addr, nil
}

// AddConn runs the transport over an established connection, named by the
// type-1 address 1#name. It is for connections made by other means (a
// net.Pipe in tests, a proxy); it returns once the connection is running.
func (t *Transport) AddConn(nc net.Conn, name string) (routing.Address, error) {
	c, err := t.add(nc, name, false)
	if err != nil {
		return routing.Address{}, err
	}
	return c.addr, nil
}

// Done returns a channel that is closed when the connection named by addr
// closes (at once if there is no such connection). The hub ties forwarders
// to their connection with it.
func (t *Transport) Done(addr routing.Address) <-chan struct{} {
	if c, ok := t.conns.Load(addr); ok {
		return c.(*conn).done
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

// AfterClose arranges for f to run, in the goroutine that closes it, once
// the connection named by addr (its 1#name or its alias) has closed; if there is no such open
// connection, f runs at once in a new goroutine. f must not block. The
// returned stop function cancels the call and reports whether it did so
// before f ran. It costs no goroutine per registration, which is how the hub
// ties each forwarder to its connection.
func (t *Transport) AfterClose(addr routing.Address, f func()) (stop func() bool) {
	{
		if v, ok := t.conns.Load(addr); ok {
			c := v.(*conn)
			c.hooksMu.Lock()
			if !c.isClosed() {
				if c.hooks == nil {
					c.hooks = make(map[int]func())
				}
				id := c.nextID
				c.nextID++
				c.hooks[id] = f
				c.hooksMu.Unlock()
				return func() bool {
					c.hooksMu.Lock()
					defer c.hooksMu.Unlock()
					_, ok := c.hooks[id]
					delete(c.hooks, id)
					return ok
				}
			}
			c.hooksMu.Unlock()
		}
	}
	go f()
	return func() bool { return false }
}

// Disconnect closes the connection named by addr, if any.
func (t *Transport) Disconnect(addr routing.Address) {
	if c, ok := t.conns.Load(addr); ok {
		c.(*conn).close(nil)
	}
}

// RouteMessage sends m over the connection named by the head of its onward
// route, after removing that hop (protocol.md §6.3). It never dials.
func (t *Transport) RouteMessage(ctx context.Context, m routing.TransportMessage) error {
	hop, ok := m.Onward.Next()
	if !ok || hop.Type != routing.TCP {
		return fmt.Errorf("tcp: route %v does not start with a TCP address", m.Onward)
	}
	v, ok := t.conns.Load(hop)
	if !ok {
		t.stats.noConn.Add(1)
		return &node.RouteError{Addr: hop, Err: ErrNoConnection}
	}
	m.Onward = m.Onward[1:]
	if len(m.Onward) == 0 && !(len(m.Payload) == 1 && m.Payload[0] == 0) {
		// The peer would have nothing to route by; a 2021 Rust peer's
		// reader dies on such a frame (protocol.md §13.8). Only the Elixir
		// control ping (payload 00) is sent that way, on purpose.
		t.stats.unroutable.Add(1)
		return &node.RouteError{Addr: hop, Err: ErrNothingAfterHop}
	}
	return v.(*conn).send(ctx, m)
}

var _ node.PipeTailTransport = (*Transport)(nil)

// CanPipeTail reports whether the connection named by hop is open and can
// splice a payload's tail from a pipe (node.PipeTailTransport): a TCP
// socket, on Linux.
func (t *Transport) CanPipeTail(hop routing.Address) bool {
	if !canSplice || hop.Type != routing.TCP {
		return false
	}
	v, ok := t.conns.Load(hop)
	return ok && v.(*conn).rc != nil && !v.(*conn).isClosed()
}

// RoutePipeTail is RouteMessage for a message whose payload ends with the
// bytes of tail (node.PipeTailTransport): its frame's head is written with
// whatever else the connection writes, and the tail's bytes are spliced
// from their pipe into the socket after it. The frame's bytes are those
// RouteMessage writes for the whole payload. tail.Done is called exactly
// once, whatever it returns.
func (t *Transport) RoutePipeTail(ctx context.Context, m routing.TransportMessage, tail node.PipeTail) error {
	hop, ok := m.Onward.Next()
	if !ok || hop.Type != routing.TCP {
		tail.Done(false)
		return fmt.Errorf("tcp: route %v does not start with a TCP address", m.Onward)
	}
	v, ok := t.conns.Load(hop)
	if !ok {
		tail.Done(false)
		t.stats.noConn.Add(1)
		return &node.RouteError{Addr: hop, Err: ErrNoConnection}
	}
	m.Onward = m.Onward[1:]
	if len(m.Onward) == 0 {
		tail.Done(false)
		t.stats.unroutable.Add(1)
		return &node.RouteError{Addr: hop, Err: ErrNothingAfterHop}
	}
	return v.(*conn).sendTail(ctx, m, tail)
}

// retire adds a finished connection's counters to the transport's.
func (t *Transport) retire(c *conn) {
	t.statsMu.Lock()
	t.stats.framesIn.Add(c.framesIn.Load())
	t.stats.bytesIn.Add(c.bytesIn.Load())
	t.stats.framesOut.Add(c.framesOut.Load())
	t.stats.bytesOut.Add(c.bytesOut.Load())
	t.live.Delete(c)
	t.statsMu.Unlock()
}

// Stats returns a snapshot of the counters. The traffic counters are kept
// per connection and summed here.
func (t *Transport) Stats() Stats {
	s := &t.stats
	queued := 0
	t.conns.Range(func(_, v any) bool {
		queued += v.(*conn).queue.len()
		return true
	})
	var in, out, bin, bout uint64
	t.statsMu.Lock()
	t.live.Range(func(k, _ any) bool {
		c := k.(*conn)
		in, bin = in+c.framesIn.Load(), bin+c.bytesIn.Load()
		out, bout = out+c.framesOut.Load(), bout+c.bytesOut.Load()
		return true
	})
	in, bin = in+s.framesIn.Load(), bin+s.bytesIn.Load()
	out, bout = out+s.framesOut.Load(), bout+s.bytesOut.Load()
	t.statsMu.Unlock()
	return Stats{
		Queued:    queued,
		Malformed: s.malformed.Load(), EmptyFrames: s.empty.Load(), Oversized: s.oversized.Load(),
		Conns: t.nconns.Load(), Accepted: s.accepted.Load(), Dialled: s.dialled.Load(), Refused: s.refused.Load(),
		FramesIn: in, FramesOut: out, BytesIn: bin, BytesOut: bout,
		DecodeErrors: s.malformed.Load() + s.empty.Load() + s.oversized.Load(), Unroutable: s.unroutable.Load(), NoConnection: s.noConn.Load(),
		QueueFull: s.queueFull.Load(), TooLarge: s.tooLarge.Load(), FrameTimeouts: s.timeouts.Load(),
		Throttled: s.throttled.Load(), CutThrough: s.cut.Load(), PipeTails: s.tails.Load(), Spliced: s.spliced.Load(),
		RefusedCap: t.admit.cap.Load(), RefusedPerIP: t.admit.perIP.Load(), RefusedBudget: t.admit.budget.Load(), RefusedAllow: t.admit.allow.Load(),
		AllowClosed: s.allowClosed.Load(), AcceptErrors: s.acceptErrors.Load(), Heartbeats: s.heartbeats.Load(),
		ProbeDelayed: s.probeDelayed.Load(), ProbeClosed: s.probeClosed.Load(),
		RelayLatency: t.latency.snapshot(),
	}
}

// Connections returns the addresses of the open connections.
func (t *Transport) Connections() []routing.Address {
	var out []routing.Address
	t.conns.Range(func(_, v any) bool {
		out = append(out, v.(*conn).addr)
		return true
	})
	return out
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// closeListeners marks the transport closed and closes its listeners; it
// reports whether this call did it.
func (t *Transport) closeListeners() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.closed = true
	for l := range t.listeners {
		l.Close()
	}
	return true
}

// Shutdown stops accepting, lets every connection write what is queued,
// closes them, and waits until they are gone or ctx ends (then it closes
// them at once). It unregisters the transport from the node.
func (t *Transport) Shutdown(ctx context.Context) error {
	if t.closeListeners() {
		close(t.draining)
	}
	// Wake every reader: it writes what its connection has queued, then
	// closes it.
	t.conns.Range(func(_, v any) bool {
		v.(*conn).nc.SetReadDeadline(time.Now())
		return true
	})
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		t.Close()
		return nil
	case <-ctx.Done():
		t.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once and waits for
// their goroutines. It is idempotent.
func (t *Transport) Close() error {
	if t.closeListeners() {
		close(t.draining)
	}
	t.mu.Lock()
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	t.mu.Unlock()
	t.cancel()
	t.conns.Range(func(_, v any) bool {
		v.(*conn).close(ErrClosed)
		return true
	})
	t.wg.Wait()
	t.node.UnregisterTransport(routing.TCP)
	return nil
}

func (t *Transport) logSometimes(msg string, args ...any) {
	t.sometimes.Do(func() { t.log.Warn(msg, args...) })
}
