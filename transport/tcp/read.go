package tcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// readBufferSize is the read buffer of a connection while it has input.
// On Linux it comes from a pool when the socket is readable and goes back
// when everything read has been handled, so an idle connection holds none;
// elsewhere each connection keeps a small one of its own.
const (
	readBufferSize     = 64 << 10
	ownReadBufferSize  = 4096
	largeFrameDirectly = 16 << 10 // a partial frame this large is read straight into its body
)

// readBufPool holds read buffers as pointers to their arrays: a reader
// with one message at a time gives its buffer back before every wait, and
// a pointer to a slice would be allocated on each of them.
var readBufPool = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

func getReadBuf() []byte { return readBufPool.Get().(*[readBufferSize]byte)[:] }

func putReadBuf(b []byte) {
	if cap(b) == readBufferSize {
		readBufPool.Put((*[readBufferSize]byte)(b[:readBufferSize]))
	}
}

// readerKey carries a connection's reader in the context of the messages it
// routes, so that a send made while routing them knows its goroutine.
type readerKey struct{}

// reader is a connection's reading goroutine: it frames what arrives and
// routes it, and writes, before it reads again, what the messages it routed
// queued on other connections (see conn.send).
type reader struct {
	c    *conn
	ctx  context.Context // the transport's, carrying the reader
	buf  []byte          // buffered input is buf[r:w]
	r, w int
	more bool // more input is buffered after the message being routed
	// the last cut-through found a head not all read yet (cut.go; here
	// beside more, in what would be padding)
	cutShort bool

	pending []*conn // connections with messages this reader deferred

	// lease is the pooled buffer holding the body of the message being
	// routed (Config.ReuseBodies), or nil.
	lease *lease

	// slab holds the bodies of the small frames of one read: one
	// allocation for all of them (see alloc).
	slab []byte

	// the deadline armed on the socket (zero: none), and since when a
	// partial frame or idleness has lasted
	deadline   time.Time
	frameStart time.Time
	idleStart  time.Time

	// cut-through's state (cut.go), made on first use; while the frames
	// are being cut through, reads stop at readMax bytes (0: no bound),
	// so that the next frame's payload stays in the socket for a splice
	cs        *cutState
	readMax   int
	headCache headCache

	// relaying small frames by their bytes (relay.go), made on first use;
	// the frames declined in a row and the frames to leave to the usual
	// path without a look (kept while the cache is dropped), and the
	// frames looked at
	relayCache    *relayCache
	relayDeclined uint8
	relaySkip     uint8
	relayLooks    uint32

	// rawRead's arguments and results
	rawFn   func(uintptr) bool
	dst     []byte
	dstLeft []byte
	n       int
	err     error
}

func newReader(c *conn) *reader {
	rd := &reader{c: c}
	// The reader is found by its sends; a wait for a full mailbox first
	// writes what the reader deferred.
	rd.ctx = node.WithBeforeBlock(context.WithValue(c.t.ctx, readerKey{}, rd), rd.flushPending)
	if !c.t.cfg.ReuseBodies {
		// Every body is allocated for its frame and never reused: a
		// worker may decrypt a payload in place (securechannel).
		rd.ctx = node.WithExclusivePayloads(rd.ctx)
	}
	if c.rc != nil {
		rd.rawFn = rd.rawRead
	} else {
		rd.buf = make([]byte, ownReadBufferSize)
	}
	return rd
}

// flushPending writes what this reader deferred on other connections.
func (rd *reader) flushPending() {
	rd.flushStage()
	for i, c := range rd.pending {
		rd.pending[i] = nil
		q := c.queue
		q.mu.Lock()
		if q.deferred == rd {
			q.deferred = nil
		}
		if len(q.msgs) == 0 || !q.claimLocked() {
			q.mu.Unlock()
			continue
		}
		q.mu.Unlock()
		c.flush(true)
	}
	rd.pending = rd.pending[:0]
}

// maxSlab bounds the slab of small frame bodies allocated at once, and
// slabFrame the frames taken from it: a body that something keeps for long
// keeps its slab alive.
const (
	maxSlab   = 32 << 10
	slabFrame = 2 << 10
)

// alloc returns a new body of n bytes. The bodies of small frames that
// arrived together are cut from one slab sized to what the read brought,
// each capped at its length: never reused, so the memory of a message is
// its own for as long as it is referenced (routing.DecodeMessageOwned).
func (rd *reader) alloc(n int) []byte {
	if n > slabFrame {
		return make([]byte, n)
	}
	if len(rd.slab) < n {
		size := min(max(rd.w-rd.r, n), maxSlab)
		if size <= n {
			return make([]byte, n)
		}
		rd.slab = make([]byte, size)
	}
	b := rd.slab[:n:n]
	rd.slab = rd.slab[n:]
	return b
}

// lease is a pooled buffer lent to the message whose frame it holds (its
// payload and its routes' address values, decoded in place):
// the reader holds one reference while it routes the message, and each
// send queued while it routes one more until it is written. The last
// release returns the buffer to the pool; a reference never released (a
// connection closed with the message queued) leaves it to the collector.
type lease struct {
	buf   []byte
	refs  atomic.Int32
	relay bool // buf is a relay slab (relay.go), not a read buffer
}

func newLease(buf []byte) *lease {
	l := &lease{buf: buf}
	l.refs.Store(1)
	return l
}

func (l *lease) retain() { l.refs.Add(1) }

// retainN takes k references at once.
func (l *lease) retainN(k int32) { l.refs.Add(k) }

func (l *lease) release() { l.releaseN(1) }

// releaseN gives k references back at once.
func (l *lease) releaseN(k int32) {
	if l.refs.Add(-k) == 0 {
		if l.relay {
			putRelaySlab(l.buf)
		} else {
			putReadBuf(l.buf)
		}
	}
}

// donate returns the body of the complete frame of n bytes at the head of
// the read buffer where it lies, lending the buffer to the message, and
// moves what follows it to a new buffer: a large frame is never copied.
func (rd *reader) donate(n int) []byte {
	start := rd.r + FrameHeaderSize
	body := rd.buf[start : start+n : start+n]
	rd.lease = newLease(rd.buf)
	rest := rd.w - (start + n)
	nb := getReadBuf()
	copy(nb, rd.buf[start+n:rd.w])
	rd.buf, rd.r, rd.w = nb, 0, rest
	rd.frameStart = time.Time{}
	return body
}

// errDraining stops a reader for a graceful shutdown.
var errDraining = errors.New("tcp: draining")

// fill reads more input, waiting as long as the armed deadline allows.
func (rd *reader) fill() error {
	rd.flushPending()
	rd.dropRelaySlab()
	select {
	case <-rd.c.t.draining:
		return errDraining
	default:
	}
	if rd.rawFn == nil {
		n, err := rd.c.nc.Read(rd.buf[rd.w:])
		rd.w += n
		if n > 0 {
			rd.gotInput()
			return nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	rd.dst = nil
	if err := rd.c.rc.Read(rd.rawFn); err != nil {
		return err
	}
	if rd.err != nil {
		return rd.err
	}
	if rd.n == 0 {
		return io.EOF
	}
	rd.w += rd.n
	rd.gotInput()
	return nil
}

// gotInput notes input on the connection: the next sends from application
// goroutines may be written directly again (sendQueue.direct).
func (rd *reader) gotInput() {
	if rd.c.queue.direct.Load() != 0 {
		rd.c.queue.direct.Store(0)
	}
}

// readFull reads exactly len(p) bytes into p; after an error, dstLeft is
// what remains unread.
func (rd *reader) readFull(p []byte) error {
	rd.dstLeft = p
	if rd.rawFn == nil {
		k, err := io.ReadFull(rd.c.nc, p)
		rd.dstLeft = p[k:]
		return err
	}
	for len(p) > 0 {
		rd.dstLeft = p
		select {
		case <-rd.c.t.draining:
			return errDraining
		default:
		}
		rd.dst = p
		err := rd.c.rc.Read(rd.rawFn)
		rd.dst = nil
		switch {
		case err != nil:
			return err
		case rd.err != nil:
			return rd.err
		case rd.n == 0:
			return io.ErrUnexpectedEOF
		}
		p = p[rd.n:]
	}
	return nil
}

// setDeadline arms the socket's read deadline at d, unless an earlier one
// is armed (it is re-evaluated when it fires).
func (rd *reader) setDeadline(d time.Time) {
	if rd.deadline.IsZero() || d.Before(rd.deadline) {
		rd.deadline = d
		rd.c.nc.SetReadDeadline(d)
	}
}

func (rd *reader) clearDeadline() {
	if !rd.deadline.IsZero() {
		rd.deadline = time.Time{}
		rd.c.nc.SetReadDeadline(time.Time{})
	}
}

// timedOut decides what an expired read deadline means: a partial frame
// or an idle connection past its time (an error), or neither (re-armed).
func (rd *reader) timedOut() error {
	t := rd.c.t
	rd.deadline = time.Time{}
	now := time.Now()
	if rd.w > rd.r {
		if end := rd.frameStart.Add(t.cfg.FrameTimeout); now.Before(end) {
			rd.setDeadline(end)
			return nil
		}
		t.stats.timeouts.Add(1)
		return errors.New("partial frame timed out")
	}
	if t.cfg.IdleTimeout <= 0 {
		rd.c.nc.SetReadDeadline(time.Time{})
		return nil
	}
	// Idle means idle both ways: a peer that only receives (a forwarder's
	// registrant) is alive while we write to it.
	last := rd.idleStart
	if lw := time.Unix(0, rd.c.lastWrite.Load()); lw.After(last) {
		last = lw
	}
	if end := last.Add(t.cfg.IdleTimeout); now.Before(end) {
		rd.setDeadline(end)
		return nil
	}
	return errors.New("idle timeout")
}

// next returns the next frame's body.
func (rd *reader) next() ([]byte, error) {
	t := rd.c.t
	max := t.cfg.MaxFrameSize
	for {
		avail := rd.w - rd.r
		if avail >= FrameHeaderSize {
			n := int(binary.BigEndian.Uint16(rd.buf[rd.r:]))
			switch {
			case n == 0:
				t.stats.empty.Add(1)
				return nil, ErrEmptyFrame
			case n > max:
				t.stats.oversized.Add(1)
				return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
			}
			if avail >= FrameHeaderSize+n {
				rd.readMax = 0
				large := n >= largeFrameDirectly && t.cfg.ReuseBodies
				if t.cfg.CutThrough && !large && rd.relay(rd.buf[rd.r+FrameHeaderSize:rd.r+FrameHeaderSize+n]) {
					// Staged as its outgoing frame (relay.go).
					rd.r += FrameHeaderSize + n
					if rd.r == rd.w {
						rd.r, rd.w = 0, 0
					}
					rd.frameStart = time.Time{}
					return nil, nil
				}
				rd.flushStage() // what was relayed before goes first
				if large {
					return rd.donate(n), nil
				}
				body := rd.alloc(n)
				copy(body, rd.buf[rd.r+FrameHeaderSize:])
				rd.r += FrameHeaderSize + n
				if rd.r == rd.w {
					rd.r, rd.w = 0, 0
				}
				rd.frameStart = time.Time{}
				return body, nil
			}
		}
		// The next frame is not all here: read more.
		rd.flushStage()
		wait := false // a head read short after a cut-through: read the rest
		if avail > 0 {
			if rd.frameStart.IsZero() {
				rd.frameStart = time.Now()
				rd.setDeadline(rd.frameStart.Add(t.cfg.FrameTimeout))
			}
			if avail >= FrameHeaderSize {
				n := int(binary.BigEndian.Uint16(rd.buf[rd.r:]))
				if n < largeFrameDirectly && rd.readMax > 0 {
					rd.readMax = 0 // not one to cut through: read all there is
				}
				if n >= largeFrameDirectly || FrameHeaderSize+n > len(rd.buf) {
					if n >= largeFrameDirectly && t.cfg.CutThrough {
						done, body, err := rd.cutThrough(n)
						switch {
						case err != nil:
							return nil, err
						case done:
							// Relayed (see cut.go). The next frame may be
							// another: read only its head.
							rd.readMax = rd.peekAfterCut()
							return nil, nil
						case body != nil:
							rd.readMax = 0
							return body, nil
						}
						short := rd.cutShort
						rd.cutShort = false
						if short {
							rd.readMax = cutPeek
						} else {
							rd.readMax = 0
						}
						wait = short
					}
					if !wait {
						if n >= largeFrameDirectly && !t.cfg.NoSplice {
							done, body, err := rd.spliceSink(n)
							switch {
							case err != nil:
								return nil, err
							case done:
								// Spliced into a worker (sink_linux.go). The
								// next frame may be another: read only its
								// head.
								rd.readMax = cutPeek
								return nil, nil
							case body != nil:
								rd.readMax = 0
								return body, nil
							}
							rd.readMax = 0
						}
						return rd.readLarge(n, nil)
					}
				}
			}
			if rd.r > 0 {
				copy(rd.buf, rd.buf[rd.r:rd.w])
				rd.w -= rd.r
				rd.r = 0
			}
		} else if t.cfg.IdleTimeout > 0 {
			rd.idleStart = time.Now()
			rd.setDeadline(rd.idleStart.Add(t.cfg.IdleTimeout))
		}
		if err := rd.fill(); err != nil {
			if err = rd.readErr(err, avail > 0); err != nil {
				return nil, err
			}
		}
	}
}

// readLarge reads the rest of a large partial frame of n bytes straight
// into its body: one copy of what is buffered (and of what p holds, the
// bytes that followed it, when a cut-through gave up), then reads sized
// to the frame.
func (rd *reader) readLarge(n int, p *pipe) ([]byte, error) {
	t := rd.c.t
	rd.flushPending() // the rest of the frame may take a while
	var body []byte
	if t.cfg.ReuseBodies {
		buf := getReadBuf()
		rd.lease = newLease(buf)
		body = buf[:n:n]
	} else {
		body = make([]byte, n)
	}
	k := copy(body, rd.buf[rd.r+FrameHeaderSize:rd.w])
	rd.r, rd.w = 0, 0
	if p != nil && p.n > 0 {
		b, err := readPipe(p, body[k:k+min(p.n, n-k)])
		if err != nil {
			return nil, err
		}
		k += len(b)
	}
	for {
		err := rd.readFull(body[k:])
		if err == nil {
			rd.frameStart = time.Time{}
			return body, nil
		}
		k = n - len(rd.dstLeft)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if isClosed(t.draining) {
			return nil, errDraining
		}
		rd.deadline = time.Time{}
		end := rd.frameStart.Add(t.cfg.FrameTimeout)
		if !time.Now().Before(end) {
			t.stats.timeouts.Add(1)
			return nil, errors.New("partial frame timed out")
		}
		rd.setDeadline(end)
	}
}

// readErr sorts a read error: nil when an expired deadline meant nothing
// (the read is retried), io.EOF at a clean end, the error otherwise.
func (rd *reader) readErr(err error, partial bool) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if isClosed(rd.c.t.draining) {
			return errDraining
		}
		return rd.timedOut()
	case partial && errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	}
	return err
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (rd *reader) release() {
	rd.dropRelaySlab()
	rd.dropCut()
	if rd.rawFn != nil && rd.buf != nil {
		putReadBuf(rd.buf)
	}
	rd.buf = nil
}

func (c *conn) readLoop() {
	t := c.t
	rd := newReader(c)
	var limiter *rate.Limiter
	if t.cfg.MessageRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(t.cfg.MessageRate), max(t.cfg.MessageBurst, 1))
	}
	err := c.route(rd, limiter)
	rd.flushPending()
	rd.release()
	if errors.Is(err, errDraining) {
		// Graceful shutdown: write what is queued, then close.
		c.drain()
	}
	c.close(closeReason(err))
	c.waitWriter()
	t.retire(c)
}

// route reads and routes frames until the connection fails or closes.
func (c *conn) route(rd *reader, limiter *rate.Limiter) error {
	t := c.t
	for {
		if limiter != nil && !limiter.Allow() {
			t.stats.throttled.Add(1)
			rd.flushPending()
			if err := limiter.Wait(t.ctx); err != nil {
				return ErrClosed
			}
		}
		body, err := rd.next()
		if err != nil {
			return err
		}
		if body == nil {
			continue // cut through, or relayed (cut.go, relay.go)
		}
		c.framesIn.Add(1)
		c.bytesIn.Add(uint64(len(body) + FrameHeaderSize))
		if isHeartbeat(body) {
			t.stats.heartbeats.Add(1) // dropped silently: not a probe, not unroutable
			continue
		}
		// The connection's own address goes at the head of the return
		// route, so that replies find their way back (protocol.md §6.3).
		m, _, err := routing.DecodeMessageOwned(body, c.addr)
		if err != nil {
			t.stats.malformed.Add(1)
			return fmt.Errorf("malformed frame: %w", err)
		}
		rd.more = rd.w-rd.r >= FrameHeaderSize
		err = t.node.Route(rd.ctx, m)
		// Judged while the lease holds: the address may share its memory.
		stale := err != nil && t.recentlyStopped(err)
		if !rd.more {
			rd.flushPending()
		}
		if err != nil {
			if t.ctx.Err() != nil {
				return ErrClosed
			}
			if !stale && (errors.Is(err, ErrNoConnection) || errors.Is(err, node.ErrUnknownAddress)) {
				// A nonexistent address: maybe a probe for an alias. (A
				// connection or forwarder that has just gone is not:
				// its peers are still sending to it.)
				rd.flushPending() // miss may wait
				if !c.miss() {
					return ErrClosed
				}
			}
			// Counted where it happened: a full queue, a frame too large,
			// no connection. Otherwise logged, before the lease goes: m's
			// routes lie in its buffer.
			if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrNoConnection) {
				t.stats.unroutable.Add(1)
				t.logSometimes("dropped message", "peer", c.name, "onward", m.Onward.String(), "err", err)
			}
		}
		if rd.lease != nil {
			rd.lease.release()
			rd.lease = nil
		}
	}
}

// closeReason turns a reader's last error into the connection's close
// reason (nil for a normal end).
func closeReason(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, errDraining), errors.Is(err, net.ErrClosed):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("read timed out")
	}
	return err
}
