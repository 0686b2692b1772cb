package portal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Defaults of Options.
const (
	// DefaultWindow is the flow-control window each side grants an
	// extension peer: the stream bytes it may send beyond what has been
	// written to the local socket.
	// 2 MiB: the path inlet → hub → outlet, and more so inside a secure
	// channel, is a pipeline of several goroutines and sockets, and a
	// window under its depth stalls the sender between grants
	// (BenchmarkDownload: 512 KiB → 2 MiB gave +8 % plain and +26 %
	// secure for one stream). It is the memory one portal may hold for a
	// local socket that reads nothing.
	DefaultWindow = 2 << 20
	// DefaultChunk is the largest Data message sent to an extension peer:
	// the largest allowed, which with the routes and a secure channel's
	// overhead (portals.md §9.4) still fits a 65535-byte frame. Fewer,
	// larger messages cost less per byte (each is a frame, a hand-off
	// between goroutines and an AEAD call; BenchmarkDownload), and 1 GiB
	// takes 17477 messages, about a quarter of a channel's nonce budget.
	DefaultChunk = MaxChunk
	// MaxChunk is the largest Options.Chunk and Options.LegacyChunk.
	MaxChunk = 60 << 10
	// DefaultLegacyChunk is the largest Payload sent to a 2021 Rust peer.
	// Rust sends 256-byte chunks but accepts any size (portals.md §6.1);
	// larger chunks stretch a Rust channel's 65535-message budget from
	// 16 MiB to 1 GiB.
	DefaultLegacyChunk = 16 << 10
	// DefaultHandshakeTimeout bounds the wait for the outlet's answer.
	DefaultHandshakeTimeout = 20 * time.Second
	// DefaultCloseWait is how long a side that sent Disconnect keeps
	// delivering bytes still in flight: until the extension peer's answering
	// Disconnect, or this long for a 2021 Rust peer (which waits 1 s before
	// stopping).
	DefaultCloseWait = 5 * time.Second
	// G2Chunk is the largest data message sent to a G2 peer, whatever
	// LegacyChunk says: the 2021 G2 worker writes each message to its
	// socket with a single write, not write_all (portals.md §5.2 step 6),
	// so a large message risks a short write that silently loses its tail;
	// 256 bytes is what G2 peers send each other (§6.1).
	G2Chunk = 256
	// legacyCloseWait is the grace period towards a 2021 Rust peer, which
	// gives no answer to a Disconnect.
	legacyCloseWait = time.Second
)

// Options are the settings shared by inlets and outlets. The zero value
// means the defaults.
type Options struct {
	// Window is the flow-control window granted to an extension peer;
	// 0 means DefaultWindow.
	Window int
	// SharedWindow is the credit that the busy portals of one inlet or
	// outlet (those that wrote to their local socket in the last 100-200
	// ms) grant their peers together: while more are busy than it holds
	// windows, each grants its part, at least 512 KiB (or Window, if
	// less), so that many streams over one connection keep about the
	// bytes in flight of a few. Likewise, while many of them send, each
	// sends no more than its part (at least a quarter of the peer's
	// window and a chunk) past what the peer has proven written. 0 means
	// 2 × Window; negative means no sharing (each grants Window, and
	// sends up to the peer's limit).
	SharedWindow int
	// Chunk is the largest data message to an extension peer; 0 means
	// DefaultChunk. At most 60 KiB.
	Chunk int
	// LegacyChunk is the largest Payload to a 2021 G3 peer; 0 means
	// DefaultLegacyChunk. 256 reproduces Rust's chunking exactly. G2 peers
	// get at most G2Chunk.
	LegacyChunk int
	// NoExtension disables the flow-control extension: the portal speaks
	// exactly 2021 G3 to everyone.
	NoExtension bool
	// NoEarlyData makes an inlet send plain Pings only: no early data,
	// and a first Credit, even to outlets that offer FeatureEarlyData.
	// An outlet always takes early data when it speaks the extension.
	NoEarlyData bool
	// CloseWait: see DefaultCloseWait; 0 means the default.
	CloseWait time.Duration
	// G2IdleTimeout closes a G2 portal that carried no byte either way for
	// this long: G2 has no close signal, so a portal whose peer's socket
	// has ended is otherwise kept until the local socket ends (portals.md
	// §12.5). 0 means never.
	G2IdleTimeout time.Duration
	// ConnDone, when set, returns a channel closed when the TCP
	// connection named by a route's first hop closes (tcp.Transport.Done).
	// A portal whose route starts with a TCP address then closes with that
	// connection: otherwise a portal that sends nothing (idle, or waiting
	// for credit) after its hub connection is lost stays open, holding its
	// socket, until that socket ends.
	ConnDone func(hop routing.Address) <-chan struct{}
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.SharedWindow == 0 {
		o.SharedWindow = 2 * o.Window
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	o.Chunk = min(o.Chunk, MaxChunk)
	if o.LegacyChunk <= 0 {
		o.LegacyChunk = DefaultLegacyChunk
	}
	o.LegacyChunk = min(o.LegacyChunk, MaxChunk)
	if o.CloseWait <= 0 {
		o.CloseWait = DefaultCloseWait
	}
	return o
}

// Stats are the counters of one side of portals, read with Stats.
type Stats struct {
	Open     int64  // portals open now
	Opened   uint64 // portals opened
	Failed   uint64 // portals that closed with an error (lost bytes, protocol, budget, unreachable)
	BytesIn  uint64 // bytes from local sockets sent to peers
	BytesOut uint64 // bytes from peers written to local sockets
	Early    uint64 // portals whose first bytes went with the Ping, taken by the outlet
	Spliced  uint64 // of BytesOut, those the transport spliced into local sockets, never read into memory (node.SpliceSink)
}

type counters struct {
	open              atomic.Int64
	opened, failed    atomic.Uint64
	early             atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	spliced           atomic.Uint64
	// share: the busy portals, for Options.SharedWindow (share: those
	// that wrote to their local socket; sending: those that read from it
	// and sent).
	share, sending streamShare
}

func (c *counters) snapshot() Stats {
	return Stats{Open: c.open.Load(), Opened: c.opened.Load(), Failed: c.failed.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(), Early: c.early.Load(), Spliced: c.spliced.Load()}
}

// pconn is one portal: a local TCP connection relayed to the peer portal
// worker at route, from addr (a fresh random address). It owns nc and the
// worker at addr.
//
// The portal's address is an inline worker (node.WorkerConfig.Inline):
// the peer's messages are handled in the goroutine that delivers them
// (the TCP transport's reader, a secure channel's worker), one at a time
// (hmu), and their bytes are written to the local socket from there when
// nothing is queued and the socket takes them at once; what it does not
// take waits in q for the writer goroutine. The delivering goroutine never
// waits for the local socket, nor for anything this portal sends: a
// message that would wait (a 2021 Rust peer, which has no flow control,
// ahead of a slow local socket) goes to a mailbox (overflow) whose
// goroutine waits instead, and the delivering goroutine waits only when
// that mailbox is full, as it would with a mailbox of its own.
//
// Two goroutines besides: the one that runs the portal reads the local
// socket and sends to the peer (reader), and the writer writes what is
// queued to the local socket. Every message to the peer goes through sendLocked,
// which refuses anything after a Disconnect.
type pconn struct {
	node   *node.Node
	addr   routing.Address
	nc     net.Conn
	rc     syscall.RawConn // for writes that never wait; nil: none
	rr     *rawReader      // reads rc, for the reader; nil when rc is
	sp     *spliceIn       // splices from rc, for the reader (pipe_linux.go)
	role   string
	gen    Generation
	route  routing.Route
	budget *Budget
	log    *slog.Logger
	opts   Options
	stats  *counters

	// extOffered: this side (an outlet) offered the extension and waits to
	// learn whether the inlet took it; ext: both sides speak it.
	extOffered bool

	// smu orders what goes to the peer: a data message's offset and its
	// place in the stream, and the Disconnect's total, are taken under it.
	smu sync.Mutex
	// creditDue is the Credit a delivering goroutine left for the writer
	// goroutine to send (grant).
	creditDue  atomic.Uint64
	mu         sync.Mutex
	ext        bool
	sendClosed bool   // Disconnect sent (G3) or sending stopped (G2)
	sendLimit  uint64 // ext: the peer lets us send stream bytes [0, sendLimit)
	sent       uint64 // stream bytes sent
	recvd      uint64 // stream bytes received and queued
	dataSeen   bool   // ext: a Data has come (no Payload may follow)
	granted    uint64 // ext: the limit we granted the peer
	peerWindow uint64 // ext: the peer's window, or more (0: not known yet; see recycler)
	peerWrote  uint64 // ext: the most the peer's Credits said it had written (AppendCreditWritten)
	// capSure: sendCap may bound the sending below the peer's limit: the
	// peer's Credits say what it wrote, or its window is known exactly
	// (its Pong or Ping said it). An older ockamhub inlet's first Credit
	// grants its window plus what it had written: limit-peerWindow then
	// falls short of what it wrote, and a cap counted from it can stay
	// below the point where the peer grants again (a stall).
	capSure    bool
	capGiven   uint64 // ext: the most sendCap returned
	written    uint64 // stream bytes written to the local socket
	shareEpoch int64  // the last epoch this portal counted as busy in (streamShare)
	credited   uint64 // written when the last Credit was granted (wrote)
	sendEpoch  int64  // the last epoch this portal counted as sending in (sendCap)
	wake       chan struct{}

	// hmu serialises the handling of the peer's messages.
	hmu sync.Mutex
	// handshaking: an inlet waits for the outlet's answer, sent to hs.
	handshaking bool
	// early: an inlet's early data, carried in its Ping and kept until the
	// Pong says how much of it the outlet took; the rest, which the reader
	// sends first, after (under hmu until the handshake, then mu).
	early []byte
	// pingEarly: an inlet sent its Ping in the early-data form (with its
	// window, and early perhaps empty).
	pingEarly bool
	// readBuf, when set, is the reader's first buffer, which holds early
	// (headroom+smallRead bytes).
	readBuf []byte
	hs      chan handshakeResult
	// stopped: no more of the peer's messages are handled (after their
	// Disconnect, an error, or the end of the portal).
	stopped bool
	// overflow, opened on first need, takes the messages that would make
	// the delivering goroutine wait; backlog counts those not yet handled:
	// while it is not 0, the overflow goroutine handles every message, in
	// order.
	overflow *node.Mailbox
	backlog  int

	// watch, when set, fails the portal when the TCP connection its route
	// starts with closes (Options.ConnDone).
	watch *connWatch

	pipes   atomic.Int32 // pipes in flight as message tails (pipe_linux.go)
	active  atomic.Int64 // UnixNano of the last byte either way (G2 idle timeout)
	q       *writeQueue
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	ctx     context.Context
	once    sync.Once
	reason  error
	peerEOF chan struct{} // closed when the peer's Disconnect arrived
	peerEnd sync.Once
	start   time.Time
}

// handshakeResult is what an inlet learnt from the outlet's answer.
type handshakeResult struct {
	gen   Generation
	route routing.Route
	ext   *Extension
	err   error
}

func newPConn(n *node.Node, nc net.Conn, role string, gen Generation, route routing.Route, budget *Budget, log *slog.Logger, opts Options, st *counters) *pconn {
	addr := routing.LocalAddress(node.RandomAddress(16)) // fresh and unguessable, per connection
	ctx, cancel := context.WithCancel(context.Background())
	c := &pconn{
		node: n, addr: addr, nc: nc, rc: directConn(nc), role: role, gen: gen, budget: budget,
		log: log.With("portal", addr.Value, "role", role), opts: opts, stats: st,
		wake: make(chan struct{}, 1), q: newWriteQueue(max(opts.Window, 1<<20)),
		ctx: ctx, cancel: cancel, peerEOF: make(chan struct{}), start: time.Now(),
	}
	c.setRoute(route)
	return c
}

// setRoute sets the route to the peer, and the chunk sizes that fit it.
func (c *pconn) setRoute(route routing.Route) {
	c.route = route
	if route != nil {
		c.opts.Chunk = fitChunk(c.opts.Chunk, route, c.addr)
		c.opts.LegacyChunk = fitChunk(c.opts.LegacyChunk, route, c.addr)
	}
}

// register starts the portal's inline worker at c.addr.
func (c *pconn) register() error {
	_, err := c.node.StartWorkerConfig(context.Background(), c, node.WorkerConfig{Addresses: []string{c.addr.Value}, Inline: true})
	return err
}

// unregister stops the portal's worker and overflow mailbox: nothing more
// is delivered to the portal.
func (c *pconn) unregister() {
	c.hmu.Lock()
	c.stopped = true
	ov := c.overflow
	c.hmu.Unlock()
	c.node.StopWorker(context.Background(), c.addr.Value)
	if ov != nil {
		ov.Close()
	}
}

// run relays until the portal closes, and logs its close. credit: the
// inlet grants the outlet its window with a first Credit (it accepted the
// extension, and has not said so in its Ping).
func (c *pconn) run(ctx context.Context, credit bool) {
	c.stats.open.Add(1)
	c.stats.opened.Add(1)
	defer c.stats.open.Add(-1)
	if credit {
		// Tell the outlet we speak the extension, and grant its window.
		// With the bytes written (credit): an outlet counts its sending
		// cap from them only once a Credit has said them (capSure).
		c.mu.Lock()
		g := c.granted
		c.mu.Unlock()
		if err := c.send(c.credit(g), false); err != nil {
			c.fail(err)
		}
	}
	if c.log.Enabled(ctx, slog.LevelInfo) { // the route's text costs a microsecond or two per portal
		c.mu.Lock()
		ext := c.ext || c.extOffered
		c.mu.Unlock()
		c.log.Info("portal open", "peer", c.route.String(), "generation", c.gen.String(), "flow_control", ext)
	}
	stop := context.AfterFunc(ctx, func() {
		c.sendDisconnect()
		c.closeLocal(fmt.Errorf("portal: shutting down: %w", ErrClosed))
	})
	defer stop()
	c.wg.Go(c.writer)
	if c.gen == G2 && c.opts.G2IdleTimeout > 0 {
		c.wg.Go(c.idle)
	}
	if first, ok := c.route.Next(); ok && first.Type == routing.TCP && c.opts.ConnDone != nil && c.watch != nil {
		if done := c.opts.ConnDone(first); done != nil {
			c.watch.add(first, done, c)
			defer c.watch.remove(done, c)
		}
	}
	c.reader() // in this goroutine: one fewer to start per portal
	<-c.ctx.Done()
	c.unregister()
	c.wg.Wait()
	c.mu.Lock()
	in, out := c.sent, c.written
	c.mu.Unlock()
	args := []any{"bytes_to_peer", in, "bytes_from_peer", out, "duration", time.Since(c.start).Round(time.Millisecond)}
	if c.reason != nil && !errors.Is(c.reason, io.EOF) && !errors.Is(c.reason, ErrClosed) {
		c.stats.failed.Add(1)
		c.log.Warn("portal closed", append(args, "reason", c.reason.Error())...)
	} else {
		reason := "closed"
		if c.reason != nil {
			reason = c.reason.Error()
		}
		c.log.Info("portal closed", append(args, "reason", reason)...)
	}
}

// send sends one control message to the peer (Credit, or with last a
// Disconnect, after which nothing more is sent).
func (c *pconn) send(payload []byte, last bool) error {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.sendLocked(c.ctx, payload, last, 0)
}

// grant grants the peer credit up to limit g. A delivering goroutine
// leaves it to the writer goroutine: it must not wait for what sending
// may wait for (smu, held by a send waiting for room on the way; room in
// the mailbox of the secure channel worker that is delivering this very
// message).
func (c *pconn) grant(g uint64, delivering bool) {
	if !delivering {
		if err := c.send(c.credit(g), false); err != nil {
			c.fail(err)
		}
		return
	}
	for {
		old := c.creditDue.Load()
		if old >= g || c.creditDue.CompareAndSwap(old, g) {
			break
		}
	}
	c.q.poke()
}

// credit returns a Credit granting limit g, with the bytes written to the
// local socket so far (AppendCreditWritten): a peer whose grants shrink
// with the shared window (streamShare) proves with its limit alone only
// what its full window allows, and the peer's reader would then hold a
// whole window of buffers for each portal however little it grants.
func (c *pconn) credit(g uint64) []byte {
	c.mu.Lock()
	w := c.written
	c.mu.Unlock()
	return AppendCreditWritten(nil, g, w)
}

// sendLocked sends one message with smu held, as long as ctx allows; n is
// the stream bytes it carries.
func (c *pconn) sendLocked(ctx context.Context, payload []byte, last bool, n int) error {
	return c.sendLockedTail(ctx, payload, last, n, nil)
}

// sendLockedTail is sendLocked for a message whose payload ends with the
// bytes of tail, unless nil (see pipeTail); tail.Done is called once.
func (c *pconn) sendLockedTail(ctx context.Context, payload []byte, last bool, n int, tail node.PipeTail) error {
	c.mu.Lock()
	if c.sendClosed {
		c.mu.Unlock()
		if tail != nil {
			tail.Done(false)
		}
		return nil
	}
	if !c.budget.take(last) {
		c.mu.Unlock()
		if tail != nil {
			tail.Done(false)
		}
		return ErrBudget
	}
	if last {
		c.sendClosed = true
	}
	c.sent += uint64(n)
	c.mu.Unlock()
	// The worker's address is the portal's only address on the wire.
	// No timer per message: a blocked send ends with the portal's context.
	// The last message may go out after that context ended (see
	// sendClose), within CloseWait.
	if last {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(c.ctx), c.opts.CloseWait)
		defer cancel()
	}
	m := routing.TransportMessage{Version: routing.Version, Onward: c.route, Return: routing.Route{c.addr}, Payload: payload}
	var err error
	if tail != nil {
		err = c.node.RoutePipeTail(ctx, m, tail)
	} else {
		err = c.node.Route(ctx, m)
	}
	if err != nil {
		return fmt.Errorf("portal: sending to %s: %w", c.route, err)
	}
	return nil
}

// sendDisconnect sends the G3 Disconnect once (with the total to an
// extension peer, and the abort flag after an error); G2 has no close
// signal.
func (c *pconn) sendDisconnect() { c.sendClose(false) }

func (c *pconn) sendClose(abort bool) {
	// A send blocked towards a peer that reads nothing (a full queue on
	// the way; a 2021 Rust node stalls its whole TCP connection behind one
	// slow portal) holds smu: after CloseWait, end the portal's context,
	// which ends that send, so that closing never hangs.
	stuck := time.AfterFunc(c.opts.CloseWait, c.cancel)
	c.smu.Lock()
	stuck.Stop()
	defer c.smu.Unlock()
	c.mu.Lock()
	if c.gen == G2 {
		c.sendClosed = true
	}
	total := int64(-1)
	if c.ext {
		total = int64(c.sent)
	}
	c.mu.Unlock()
	p := AppendDisconnect(nil, total)
	if abort && total >= 0 {
		p = AppendAbort(nil, uint64(total))
	}
	if err := c.sendLocked(c.ctx, p, true, 0); err != nil {
		c.log.Debug("portal: sending Disconnect", "err", err)
	}
}

// idle closes a G2 portal after Options.G2IdleTimeout without traffic.
func (c *pconn) idle() {
	c.active.Store(time.Now().UnixNano())
	t := time.NewTicker(c.opts.G2IdleTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, c.active.Load())) >= c.opts.G2IdleTimeout {
				c.closeLocal(fmt.Errorf("portal: G2 portal idle for %v", c.opts.G2IdleTimeout))
				return
			}
		}
	}
}

// frameSlack is what a frame needs besides the portal's own message
// (payload and routes): the transport's framing, and a secure channel's
// outer routes, counter, tag and length prefixes.
const frameSlack = 2 << 10

// fitChunk returns chunk, or less when a message of chunk bytes with
// this route (onward and return, as carried in a frame) and frameSlack
// would not fit a 65535-byte frame (but not under 1 KiB).
func fitChunk(chunk int, route routing.Route, from routing.Address) int {
	m := routing.TransportMessage{Version: routing.Version, Onward: route, Return: routing.Route{from}}
	// Twice the routes (a secure channel carries them inside and outside),
	// each with a payload length of up to 5 bytes instead of 1.
	room := 65535 - frameSlack - headroom - 2*(m.EncodedLen()+4)
	if chunk <= room {
		return chunk
	}
	return max(room, 1<<10)
}

// headroom is the space kept in front of each read for the message
// header: a tag and two uvarints.
const headroom = 1 + 2*binary.MaxVarintLen64

// smallRead is the size under which a read is copied out of the read
// buffer (which is then reused) rather than sent in it.
const smallRead = 4 << 10

// creditStall is how long the reader waits for credit before it holds
// its buffers in flight weakly (recycler.relax).
const creditStall = 100 * time.Millisecond

// reader relays the local socket to the peer. Each read lands after
// headroom bytes of a fresh buffer, so the message is built around the
// bytes without copying them.
//
// Until a read fills smallRead bytes, reads go to a small buffer and are
// copied out (as any read under smallRead is): most portals begin with a
// short request, and a 64 KiB buffer per portal and side, allocated and
// cleared before the first byte is read, was a tenth of the CPU of
// opening one (BenchmarkFirstByte).
func (c *pconn) reader() {
	size := headroom + max(c.opts.Chunk, c.opts.LegacyChunk)
	var rec recycler
	relax := rec.relax
	var stall *time.Timer // a wait for credit that lasts: see creditStall
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	var b *readBuf // nil: reads go to the small buffer
	// Early data the outlet did not take goes first, as if read again;
	// it lies in buf (readBuf) after the headroom, where the copy below
	// moves it forward (copy handles the overlap).
	c.mu.Lock()
	pending, buf := c.early, c.readBuf
	c.early, c.readBuf = nil, nil
	c.mu.Unlock()
	if buf == nil {
		buf = make([]byte, headroom+smallRead)
	}
	for {
		c.mu.Lock()
		n := c.opts.LegacyChunk
		// The cap is read once per read: it moves with the busy count,
		// which other portals change, and n is sized from the one the
		// wait found room under (a second reading may be lower).
		var limit uint64
		for c.ext && !c.sendClosed {
			if limit = c.sendCap(); c.sent < limit {
				break
			}
			c.mu.Unlock()
			// Waiting for credit, which comes within a round trip while
			// the peer writes, or not for long when its socket is full:
			// then the peer holds what was sent, and this side needs none
			// of its buffers (relaxing at once lost most of them to the
			// collector between two Credits: BenchmarkStreams -benchmem).
			if stall == nil {
				stall = time.NewTimer(creditStall)
			} else {
				stall.Reset(creditStall)
			}
			select {
			case <-c.wake:
			case <-stall.C:
				// Held by the sending cap below the peer's limit, with no
				// Credit for a while: the cap lifts to the limit. A peer
				// that grants in larger steps than a quarter of its window
				// (what the cap leaves room for), or whose window is not
				// what this side took it for, grants only past the cap.
				c.mu.Lock()
				capped := c.sent < c.sendLimit
				if capped {
					c.capGiven = max(c.capGiven, c.sendLimit)
				}
				c.mu.Unlock()
				if capped {
					break
				}
				relax()
				select {
				case <-c.wake:
				case <-c.ctx.Done():
					return
				}
			case <-c.ctx.Done():
				return
			}
			stall.Stop()
			c.mu.Lock()
		}
		if c.sendClosed {
			c.mu.Unlock()
			return
		}
		if c.ext {
			n = int(min(uint64(c.opts.Chunk), limit-c.sent))
		} else if c.gen == G2 {
			n = min(n, G2Chunk)
		}
		c.mu.Unlock()
		if b == nil {
			n = min(n, smallRead)
		}
		var k int
		var err error
		if len(pending) > 0 {
			k = copy(buf[headroom:headroom+n], pending)
			pending = pending[k:]
		} else if t := c.takePipe(b != nil); t != nil {
			// Streaming straight to a TCP connection: the bytes go from
			// the socket to the connection's socket through a pipe, never
			// through this buffer (pipe_linux.go).
			var serr error
			if err, serr = c.spliceSend(t, n, relax); serr != nil {
				c.fail(serr)
				return
			}
		} else {
			k, err = c.readLocal(buf[headroom:headroom+n], relax)
		}
		if k > 0 {
			out := buf[:headroom+k]
			var room []byte // the memory out lies in, given up with it (readBuf)
			if k < smallRead || b == nil {
				out = append([]byte(nil), out...)
			} else {
				room = b[:]
			}
			if serr := c.sendRead(out, room); serr != nil {
				c.fail(serr)
				return
			}
			if b == nil {
				if k == smallRead {
					// The stream is more than short requests: read in
					// chunks from now on.
					b = new(readBuf)
					buf = b[sealLead : sealLead+size]
				}
			} else if k >= smallRead {
				// out now belongs to the message: take another buffer,
				// one the peer is done with if it can tell (recycler).
				c.mu.Lock()
				end, ext, limit, win, wrote := c.sent, c.ext, c.sendLimit, c.peerWindow, c.peerWrote
				c.mu.Unlock()
				if ext {
					rec.sent(b, end)
				}
				b = rec.getWritten(limit, win, wrote, end)
				buf = b[sealLead : sealLead+size]
			}
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.localEOF(err)
			return
		}
	}
}

// sendCap returns how far the reader may send, under c.mu: the peer's
// limit, and while many portals of this inlet or outlet send, no more than
// their part of the shared window past what the peer has proven written
// (its Credits' written count, or its limit less its window): the peer's
// grants shrink with the shared window only once it is busy itself, and
// never below the window it announced first, which 16 portals opened at
// once each filled (BenchmarkStreams). The part is at least a quarter of
// the peer's window and a chunk, so a peer that grants a quarter of its
// window at a time always gets a quarter to write: the cap never waits
// for a Credit that waits for it.
//
// A cap once returned is never taken back (capGiven): the reader tests
// it, then sizes its read by it, and a portal counted in between shrank
// it below the bytes sent (a read sized by the difference, wrapped, went
// past the cap). What the peer proved is taken as at most the bytes sent:
// a written count past them (a lie) wrapped proven+w below them.
func (c *pconn) sendCap() uint64 {
	if c.opts.SharedWindow <= 0 || c.peerWindow == 0 || !c.capSure {
		return c.sendLimit
	}
	limit := c.sendLimit
	if busy := c.stats.sending.busy(time.Now(), &c.sendEpoch); busy > 1 {
		w := max(uint64(sharedWindow(c.opts.Window, c.opts.SharedWindow, busy)), c.peerWindow/4+uint64(c.opts.Chunk))
		proven := c.peerWrote
		if c.sendLimit >= c.peerWindow {
			proven = max(proven, c.sendLimit-c.peerWindow)
		}
		limit = min(limit, min(proven, c.sent)+w)
	}
	c.capGiven = max(c.capGiven, limit)
	return c.capGiven
}

// readLocal reads from the local socket, calling waiting before it waits
// for the socket to have something to read (at every read where it cannot
// tell).
func (c *pconn) readLocal(p []byte, waiting func()) (int, error) {
	if c.rc != nil {
		if c.rr == nil {
			c.rr = newRawReader(c.rc)
		}
		return c.rr.read(p, waiting)
	}
	waiting()
	return c.nc.Read(p)
}

// sendRead sends the bytes of one read, msg[headroom:]. room, unless
// nil, is the readBuf msg lies in, from room[sealLead:], which the reader
// gives up (see readBuf): nothing reads msg after this. To an extension
// peer they go as Data within the credit it granted, split and waiting for
// more credit when the read was sized before the flow control came into
// force (an outlet learns that the inlet took its offer from the inlet's
// first Credit, which may arrive while a read of LegacyChunk bytes is
// pending); otherwise as one Payload (or G2 data).
func (c *pconn) sendRead(msg, room []byte) error {
	at := sealLead // where msg lies in room
	for {
		c.mu.Lock()
		for c.ext && c.sent >= c.sendLimit && !c.sendClosed {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.ctx.Done():
				return nil
			}
			c.mu.Lock()
		}
		ext, credit, closed := c.ext, c.sendLimit-c.sent, c.sendClosed
		c.mu.Unlock()
		if closed {
			return nil
		}
		k := len(msg) - headroom
		if !ext || uint64(k) <= credit {
			return c.sendData(msg, ext, room, at)
		}
		// Send what the credit allows from a copy: the message keeps its
		// bytes, and the rest's header goes where they were.
		part := make([]byte, headroom+int(credit))
		copy(part[headroom:], msg[headroom:headroom+int(credit)])
		if err := c.sendData(part, true, nil, 0); err != nil {
			return err
		}
		msg = msg[credit:]
		at += int(credit)
	}
}

// sendData sends one chunk, msg[headroom:], in the form the peer reads,
// writing the header into the headroom: G2 data, Data (asData, an
// extension peer) or Payload. room, unless nil, is the memory msg lies
// in, from room[at:], given up with the message (node.WithPayloadRoom).
func (c *pconn) sendData(msg []byte, asData bool, room []byte, at int) error {
	c.smu.Lock()
	defer c.smu.Unlock()
	c.mu.Lock()
	off := c.sent
	c.mu.Unlock()
	k := len(msg) - headroom
	var h []byte
	switch {
	case c.gen == G2:
		h = binary.AppendUvarint(make([]byte, 0, headroom), uint64(k))
	case asData:
		h = binary.AppendUvarint(binary.AppendUvarint(append(make([]byte, 0, headroom), byte(TagData)), off), uint64(k))
	default:
		h = binary.AppendUvarint(append(make([]byte, 0, headroom), byte(TagPayload)), uint64(k))
	}
	p := msg[headroom-len(h):]
	copy(p, h)
	c.stats.bytesIn.Add(uint64(k))
	c.active.Store(time.Now().UnixNano())
	ctx := c.ctx
	if room != nil {
		ctx = node.WithPayloadRoom(ctx, room, at+headroom-len(h))
	}
	return c.sendLocked(ctx, p, false, k)
}

// localEOF handles the end of the local socket's input: Disconnect, then
// deliver what is still in flight for a while, then close.
func (c *pconn) localEOF(err error) {
	c.sendDisconnect()
	if c.gen == G2 {
		c.closeLocal(io.EOF)
		return
	}
	c.mu.Lock()
	ext := c.ext
	c.mu.Unlock()
	wait := legacyCloseWait
	if ext {
		wait = c.opts.CloseWait
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.peerEOF:
		// peerDisconnect has already checked the total, and closes.
	case <-t.C:
		if ext {
			c.closeLocal(fmt.Errorf("portal: the peer did not answer Disconnect within %v after local EOF (%v)", wait, err))
			return
		}
		c.closeLocal(io.EOF)
	case <-c.ctx.Done():
		// Failed (then this does nothing), or a stuck send was ended.
		c.closeLocal(io.EOF)
	}
}

// writer writes what the delivering goroutines could not write at once
// to the local socket, and grants credit as it goes.
func (c *pconn) writer() {
	for {
		batch, ok := c.q.pop()
		if !ok {
			// Closed and drained, or aborted: the portal is over.
			c.nc.Close()
			c.cancel()
			return
		}
		if g := c.creditDue.Swap(0); g > 0 {
			if err := c.send(c.credit(g), false); err != nil {
				c.fail(err)
			}
		}
		n := 0
		for _, b := range batch {
			n += len(b)
		}
		if len(batch) == 0 {
			continue // poked for a Credit
		}
		bufs := net.Buffers(batch)
		_, err := bufs.WriteTo(c.nc)
		c.q.done(n)
		if err != nil {
			c.fail(fmt.Errorf("portal: writing to the local connection: %w", err))
			c.nc.Close()
			c.cancel()
			return
		}
		c.wrote(n, false)
	}
}

// wrote counts n bytes written to the local socket, and grants an
// extension peer more credit once a quarter of the window has been
// written: of its window, or of its part of the shared window while many
// portals are busy (streamShare). A limit granted is never taken back.
func (c *pconn) wrote(n int, delivering bool) {
	c.stats.bytesOut.Add(uint64(n))
	c.mu.Lock()
	c.written += uint64(n)
	var g uint64
	if c.ext && !c.sendClosed {
		w := c.opts.Window
		if c.opts.SharedWindow > 0 {
			w = sharedWindow(w, c.opts.SharedWindow, c.stats.share.busy(time.Now(), &c.shareEpoch))
		}
		// A quarter of the window written since the last Credit, or the
		// limit a quarter ahead of the last (the window grew): a Credit,
		// with the bytes written (credit), even when a window that shrank
		// leaves the limit where it was, so that the peer reuses its
		// buffers as soon as they are written (recycler).
		lim := c.written + uint64(w)
		if c.written-c.credited >= uint64(w/4) || (lim > c.granted && lim-c.granted >= uint64(w/4)) {
			c.granted = max(c.granted, lim)
			c.credited = c.written
			g = c.granted
		}
	}
	c.mu.Unlock()
	if g > 0 {
		c.grant(g, delivering)
	}
}

// HandleMessage handles one of the peer's messages, in the goroutine that
// delivers it (the portal is an inline worker). m is valid only until it
// returns; its payload, which data delivered to the local socket later
// keeps (q), is not reused: the TCP transport of a node that runs portals
// allocates each frame's body (tcp.Config.ReuseBodies is for hubs only),
// and a secure channel's decrypted payload is new memory
// (TestPayloadsAreKept).
func (c *pconn) HandleMessage(ctx context.Context, _ node.Sender, m *node.Message) error {
	if len(m.Onward()) != 1 {
		// portals.md §3: nothing may follow the portal's own address.
		c.log.Debug("portal: dropped a message routed past the portal", "onward", m.Onward().String())
		return nil
	}
	c.hmu.Lock()
	switch {
	case c.stopped:
		c.hmu.Unlock()
		return nil
	case c.handshaking:
		c.handshake(m)
		c.hmu.Unlock()
		return nil
	case c.backlog > 0 || c.q.full():
		// It would wait for the local socket (a peer without flow
		// control): the overflow goroutine waits instead, and handles
		// what follows in order until it has caught up.
		ov, err := c.openOverflow()
		if err != nil {
			c.hmu.Unlock()
			return nil
		}
		c.backlog++
		c.hmu.Unlock()
		fwd := routing.TransportMessage{Version: routing.Version, Onward: routing.Route{ov.Address()}, Return: m.Return(), Payload: m.Payload()}
		if err := c.node.Route(ctx, fwd); err != nil {
			c.hmu.Lock()
			c.backlog--
			c.hmu.Unlock()
		}
		return nil
	}
	if !c.handle(ctx, m) {
		c.stopped = true
	}
	c.hmu.Unlock()
	return nil
}

// openOverflow returns the overflow mailbox, opening it and starting its
// goroutine on first use; c.hmu is held.
func (c *pconn) openOverflow() (*node.Mailbox, error) {
	if c.overflow != nil {
		return c.overflow, nil
	}
	ov, err := c.node.OpenMailbox("")
	if err != nil {
		return nil, err
	}
	c.overflow = ov
	c.wg.Go(func() {
		for {
			m, err := ov.Receive(c.ctx)
			if err != nil {
				return
			}
			c.hmu.Lock()
			stopped := c.stopped
			c.hmu.Unlock()
			// Handled without hmu, which the delivering goroutines take:
			// this one may wait for the local socket. It is the only one
			// handling while backlog is not 0.
			ok := stopped || c.handle(c.ctx, m)
			c.hmu.Lock()
			c.backlog--
			if !ok {
				c.stopped = true
			}
			c.hmu.Unlock()
		}
	})
	return ov, nil
}

// handshake handles an inlet's first message from the outlet (portals.md
// §5), with hmu held: the route, generation and extension it sets are in
// force for the messages that follow at once, before ServeConn learns the
// result from hs.
func (c *pconn) handshake(m *node.Message) {
	if len(m.Return()) == 0 {
		return // not for us (portals.md §3)
	}
	c.handshaking = false
	p := m.Payload()
	var r handshakeResult
	if len(p) == 1 && p[0] == 0 {
		r = handshakeResult{gen: G2, route: m.Return()}
	} else if msg, err := DecodeG3(p, false); err != nil || msg.Tag != TagPong {
		r.err = fmt.Errorf("%w: % x from %s", ErrHandshake, p[:min(len(p), 8)], m.Return())
	} else {
		r = handshakeResult{gen: G3, route: m.Return(), ext: msg.Ext}
		if c.opts.NoExtension || (r.ext != nil && r.ext.Version != ExtensionVersion) {
			r.ext = nil
		}
	}
	// The early bytes the outlet took (wrote to its target) are the
	// stream's first; it can only take some of those it was sent.
	var took uint64
	if r.err == nil && r.ext != nil {
		if took = r.ext.Early; took > uint64(len(c.early)) || (took > 0 && r.ext.Window < took) {
			r.err = fmt.Errorf("%w: the outlet took %d early bytes of %d, from %s", ErrHandshake, took, len(c.early), m.Return())
		}
	}
	if r.err != nil {
		c.stopped = true
	} else {
		c.mu.Lock()
		c.gen = r.gen
		c.setRoute(r.route)
		if r.ext != nil {
			c.ext = true
			c.sendLimit = r.ext.Window
			c.peerWindow = r.ext.Window // the outlet's first grant: its window
			c.capSure = true
			c.granted = uint64(c.opts.Window)
		}
		c.sent = took
		c.early = c.early[took:]
		c.mu.Unlock()
		if took > 0 {
			c.stats.bytesIn.Add(took)
			c.stats.early.Add(1)
		}
	}
	c.hs <- r
}

// handle handles one message from the peer; false: no more are handled.
// ctx is the delivering goroutine's. It never waits, but in push for a
// peer without flow control (then only in the overflow goroutine), and
// leaves what could wait to a goroutine of its own (a Disconnect's answer,
// a failure's).
func (c *pconn) handle(ctx context.Context, m *node.Message) bool {
	p := m.Payload()
	if c.gen == G2 {
		d, err := DecodeG2Data(p)
		if err != nil {
			c.failLater(fmt.Errorf("portal: G2 message from %s: %w", m.Return(), err))
			return false
		}
		return c.deliver(ctx, d, false, 0)
	}
	c.mu.Lock()
	ext := c.ext || c.extOffered
	c.mu.Unlock()
	msg, err := DecodeG3(p, ext)
	if err != nil {
		c.failLater(fmt.Errorf("portal: message from %s: %w", m.Return(), err))
		return false
	}
	switch msg.Tag {
	case TagPayload:
		// A Payload escapes the window: from an extension peer it may only
		// come before it knew the extension was in force (an outlet's
		// reads before the inlet's Credit reached it), never after its
		// first Data, nor from an inlet that has accepted (its Credit
		// comes before any of its bytes). Otherwise a peer could queue
		// without bound ahead of a slow socket, and make the delivering
		// goroutine, a TCP reader other portals share, wait.
		c.mu.Lock()
		late := c.ext && (c.extOffered || c.dataSeen)
		c.mu.Unlock()
		if late {
			c.failLater(fmt.Errorf("%w: Payload from %s after the flow control began", ErrFlowControl, m.Return()))
			return false
		}
		return c.deliver(ctx, msg.Data, false, 0)
	case TagData:
		return c.deliver(ctx, msg.Data, true, msg.Offset)
	case TagCredit:
		c.mu.Lock()
		if !c.ext && c.extOffered {
			// The inlet took our offer: from now on both ways are flow
			// controlled, and our data carries offsets. Its first limit is
			// its window, or more when it has already written bytes.
			c.ext = true
			c.peerWindow = msg.Offset
		}
		if msg.Offset > c.sendLimit {
			c.sendLimit = msg.Offset
		}
		if msg.HasWritten {
			c.capSure = true
			c.peerWrote = max(c.peerWrote, msg.Written)
		}
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return true
	case TagDisconnect:
		c.wg.Go(func() { c.peerDisconnect(msg) })
		return false
	default: // Ping, Pong after the handshake
		c.failLater(fmt.Errorf("portal: %w: tag %d after the handshake", ErrHandshake, msg.Tag))
		return false
	}
}

// deliver writes bytes to the local socket, or queues them, checking the
// offset and the window of an extension peer.
func (c *pconn) deliver(ctx context.Context, d []byte, checked bool, off uint64) bool {
	c.mu.Lock()
	if checked {
		c.dataSeen = true
		if off != c.recvd {
			c.mu.Unlock()
			c.failLater(fmt.Errorf("%w: data at offset %d, expected %d", ErrLost, off, c.recvd))
			return false
		}
		if c.recvd+uint64(len(d)) > c.granted {
			c.mu.Unlock()
			c.failLater(fmt.Errorf("%w: %d bytes past the limit %d", ErrFlowControl, c.recvd+uint64(len(d))-c.granted, c.granted))
			return false
		}
	}
	c.recvd += uint64(len(d))
	c.mu.Unlock()
	c.active.Store(time.Now().UnixNano())
	if len(d) == 0 {
		return true
	}
	if c.rc != nil && c.q.claim() {
		// Nothing queued, nobody writing: write what the socket takes now.
		n := tryWrite(c.rc, d)
		if !c.q.release(d[n:]) {
			return false
		}
		if n > 0 {
			c.wrote(n, true)
		}
		return true
	}
	// The payload aliases the frame, which is not reused (HandleMessage).
	return c.q.push(d)
}

// peerDisconnect handles the peer's Disconnect: check the total, answer an
// extension peer with ours, deliver everything, close.
func (c *pconn) peerDisconnect(msg Message) {
	c.mu.Lock()
	recvd, ext := c.recvd, c.ext
	c.mu.Unlock()
	if msg.Abort {
		c.fail(fmt.Errorf("%w: the peer closed on an error", ErrAborted))
		return
	}
	if msg.HasTotal && msg.Offset != recvd {
		c.fail(fmt.Errorf("%w: the peer sent %d bytes, %d arrived", ErrLost, msg.Offset, recvd))
		return
	}
	if ext {
		// The answer tells the peer, which is waiting for it, how much we
		// sent; it never goes to a 2021 Rust worker.
		c.sendDisconnect()
	} else {
		c.mu.Lock()
		c.sendClosed = true // portals.md §12.5: nothing after their Disconnect
		c.mu.Unlock()
	}
	c.peerEnd.Do(func() { close(c.peerEOF) })
	c.closeLocal(io.EOF)
}

// closeLocal ends the portal gracefully: the writer writes what is queued
// (for at most CloseWait), then closes the local socket, which ends the
// reader, and the context, which ends the portal (its worker then stops).
func (c *pconn) closeLocal(reason error) {
	c.once.Do(func() {
		c.reason = reason
		c.mu.Lock()
		c.sendClosed = c.sendClosed || c.gen == G2
		c.mu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(c.opts.CloseWait))
		c.q.close()
	})
}

// failLater is fail from a goroutine of its own, for a delivering
// goroutine: sending the Disconnect may wait.
func (c *pconn) failLater(err error) {
	c.wg.Go(func() { c.fail(err) })
}

// fail ends the portal on an error: Disconnect to the peer (so that both
// ends close), and an abortive close of the local socket (RST), so that the
// local application sees an error rather than a clean end of a stream that
// is incomplete.
func (c *pconn) fail(err error) {
	c.once.Do(func() {
		c.reason = err
		c.sendClose(true)
		// Linger 0 before the abort: the writer, which the abort ends,
		// closes the socket too, and a close before this would be a
		// clean end (TestConnLost failed once in 10 runs under -race).
		if tc, ok := c.nc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.q.abort()
		c.nc.Close()
		c.cancel()
	})
}
