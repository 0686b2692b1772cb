package tcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// maxBatch is how many bytes are gathered before one write.
const maxBatch = 64 << 10

// largePayload is the payload size from which a frame's payload is written
// from where it lies (a separate iovec of a vectored write) instead of
// being copied into the batch.
const largePayload = 4 << 10

// maxSegments bounds the iovecs of one vectored write.
const maxSegments = 64

// maxDirectRounds bounds the batches a routing goroutine writes for another
// connection before it leaves the rest to a writer goroutine, so that a
// busy destination cannot hold one reader for long.
const maxDirectRounds = 4

// maxSenderDirect bounds the messages in a row that senders write
// themselves (see sendQueue.direct).
const maxSenderDirect = 3

// maxSenderDirectSize is the largest message (encoded) a sender writes
// itself. Control messages and small data gain a hand-off's latency; a
// large one costs its copy into the socket, which a writer goroutine
// makes on another core while the sender prepares the next (a portal's
// reader reads on), so bulk keeps going through a writer goroutine.
const maxSenderDirectSize = 4 << 10

// how says who runs flush, and so what it may do.
type how uint8

const (
	// inWriter: a writer goroutine, which may block on the socket.
	inWriter how = iota
	// inReader: a routing goroutine (a connection's reader), which never
	// blocks on the socket and writes up to maxDirectRounds batches.
	inReader
	// inSender: an application's goroutine that found the connection
	// idle: one batch with non-blocking writes, the rest (and any
	// failure, whose close runs hooks) left to a writer goroutine, so that
	// the sender never waits on the socket nor runs another's code.
	inSender
)

// rounds returns the batches flush writes before handing the rest on.
func (h how) rounds() int {
	if h == inSender {
		return 1
	}
	return maxDirectRounds
}

// wbuf is a batch being written: frames encoded into b, and the segments
// (parts of b, and large payloads where they lie) to write in order.
type wbuf struct {
	b       []byte
	segs    [][]byte
	start   int // where the segment being built starts in b
	frames  int
	sampled bool // some message in the batch is timed for RelayLatency
	io      iovecs
	// tail, when not nil, is the end of the batch's last frame: tailLeft
	// bytes still in its pipe, spliced into the socket after segs.
	tail     node.PipeTail
	tailLeft int
}

var wbufPool = sync.Pool{New: func() any {
	return &wbuf{b: make([]byte, 0, maxBatch+MaxFrameSize+FrameHeaderSize+16)}
}}

func getWbuf() *wbuf { return wbufPool.Get().(*wbuf) }

func putWbuf(wb *wbuf) {
	if wb.tail != nil {
		// Not written in full: the frame is lost with the connection.
		wb.tail.Done(false)
		wb.tail, wb.tailLeft = nil, 0
	}
	clear(wb.segs[:cap(wb.segs)])
	wb.b, wb.segs, wb.start, wb.frames, wb.sampled = wb.b[:0], wb.segs[:0], 0, 0, false
	wbufPool.Put(wb)
}

// empty reports whether everything encoded has been written.
func (wb *wbuf) empty() bool { return len(wb.segs) == 0 && wb.tail == nil }

// size returns the bytes left to write.
func (wb *wbuf) size() int {
	n := wb.tailLeft
	for _, s := range wb.segs {
		n += len(s)
	}
	return n
}

// seal closes the segment being built in b.
func (wb *wbuf) seal() {
	if len(wb.b) > wb.start {
		wb.segs = append(wb.segs, wb.b[wb.start:])
		wb.start = len(wb.b)
	}
}

// advance drops n written bytes from the front of the segments.
func (wb *wbuf) advance(n int) {
	i := 0
	for i < len(wb.segs) && n >= len(wb.segs[i]) {
		n -= len(wb.segs[i])
		i++
	}
	if i < len(wb.segs) {
		wb.segs[i] = wb.segs[i][n:]
	}
	rest := copy(wb.segs, wb.segs[i:])
	clear(wb.segs[rest:])
	wb.segs = wb.segs[:rest]
}

// encode appends the frames of batch to wb until the batch bound is
// reached; it returns how many messages it took (encoded or dropped).
func (c *conn) encode(wb *wbuf, batch []queued) int {
	max := c.t.cfg.MaxFrameSize
	for i := range batch {
		if len(wb.b) >= maxBatch || len(wb.segs) >= maxSegments-2 {
			wb.seal()
			return i
		}
		q := &batch[i]
		if q.tail != nil {
			if !c.encodeTail(wb, q) {
				continue
			}
			// The pipe's bytes follow the segments: nothing after them in
			// this batch.
			return i + 1
		}
		if q.frame != nil {
			if len(q.frame) >= largePayload {
				wb.seal()
				wb.segs = append(wb.segs, q.frame)
			} else {
				wb.b = append(wb.b, q.frame...)
			}
			wb.frames++
			if q.at != 0 {
				wb.sampled = true
			}
			continue
		}
		m := &q.m
		var err error
		if len(m.Payload) >= largePayload {
			// The head (length, version, routes, payload length) goes in b,
			// the payload is written from where it is.
			n := m.EncodedLen()
			if n > max {
				err = fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
			} else {
				start := len(wb.b)
				head := *m
				head.Payload = nil
				var b []byte
				if b, err = appendLargeHead(wb.b, &head, n, len(m.Payload)); err == nil {
					wb.b = b
					wb.seal()
					wb.segs = append(wb.segs, m.Payload)
				} else {
					wb.b = wb.b[:start]
				}
			}
		} else {
			wb.b, err = AppendFrame(wb.b, m, max)
		}
		if err != nil {
			// Sizes are checked before queueing; only an invalid address
			// type can get here. Drop the message, keep the connection.
			c.t.stats.tooLarge.Add(1)
			c.t.logSometimes("dropped unencodable message", "peer", c.name, "err", err)
			continue
		}
		wb.frames++
		if q.at != 0 {
			wb.sampled = true
		}
	}
	wb.seal()
	return len(batch)
}

// encodeTail appends to wb the head of q's frame (length prefix, routes,
// payload length) and the payload bytes in memory, and gives wb the pipe
// that holds the rest: the same bytes encode writes for the whole payload
// in memory. false: the message was dropped.
func (c *conn) encodeTail(wb *wbuf, q *queued) bool {
	tail := q.tail
	q.tail = nil
	m := &q.m
	total := len(m.Payload) + q.tailN
	n := q.size - FrameHeaderSize
	start := len(wb.b)
	head := *m
	head.Payload = nil
	b, err := appendLargeHead(wb.b, &head, n, total)
	if err == nil && n > c.t.cfg.MaxFrameSize {
		err = fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, c.t.cfg.MaxFrameSize)
	}
	if err != nil {
		wb.b = wb.b[:start]
		tail.Done(false)
		c.t.stats.tooLarge.Add(1)
		c.t.logSometimes("dropped unencodable message", "peer", c.name, "err", err)
		return false
	}
	wb.b = append(b, m.Payload...)
	wb.seal()
	wb.tail, wb.tailLeft = tail, q.tailN
	wb.frames++
	if q.at != 0 {
		wb.sampled = true
	}
	c.t.stats.tails.Add(1)
	return true
}

// countOut counts a batch as written, before it is: once the kernel has
// the bytes the peer can see them, and a counter read then (by a test, or
// the dashboard after a client saw its reply) must not lag behind. A failed
// write takes its count back (uncountOut).
func (c *conn) countOut(wb *wbuf, bytes int) {
	c.framesOut.Add(uint64(wb.frames))
	c.bytesOut.Add(uint64(bytes))
}

func (c *conn) uncountOut(wb *wbuf, bytes int) {
	c.framesOut.Add(-uint64(wb.frames))
	c.bytesOut.Add(-uint64(bytes))
}

// wrote accounts for a batch written (or, handed to a writer goroutine,
// being written): the idle clock and the sampled relay latency of its
// messages.
func (c *conn) wrote(wb *wbuf, batch []queued) {
	if !wb.sampled && c.t.cfg.IdleTimeout <= 0 {
		return
	}
	now := time.Now().UnixNano()
	if c.t.cfg.IdleTimeout > 0 {
		c.lastWrite.Store(now)
	}
	for _, q := range batch {
		if q.at != 0 {
			c.t.latency.observe(time.Duration(now - q.at))
		}
	}
}

// claimLocked takes the right to write; q.mu is held. It fails once the
// connection has closed or while someone else writes.
func (q *sendQueue) claimLocked() bool {
	if q.writing || q.closed {
		return false
	}
	q.writing = true
	return true
}

// giveUpLocked gives the right to write up; q.mu is held. An idle
// connection keeps no queue array.
func (q *sendQueue) giveUpLocked() {
	q.writing = false
	if len(q.msgs) == 0 {
		if q.msgs != nil {
			putQueueArray(q.msgs)
		}
		if q.spare != nil {
			putQueueArray(q.spare)
		}
		q.msgs, q.spare = nil, nil
	}
	signal(q.released)
}

// flushAs writes what is queued; the caller holds the right to write and
// gives it to flushAs. Run by a reader or a sender (h) it never blocks on
// the socket: what the socket does not take at once is handed, with the
// right, to a writer goroutine. The right is given up once the queue is
// empty.
func (c *conn) flushAs(h how) {
	direct := h != inWriter
	if direct && c.rc == nil {
		go c.flush(false)
		return
	}
	q := c.queue
	for round := 0; ; round++ {
		q.mu.Lock()
		if q.closed {
			q.giveUpLocked()
			q.mu.Unlock()
			return
		}
		if direct && round >= h.rounds() && len(q.msgs) > 0 {
			q.mu.Unlock()
			go c.flush(false)
			return
		}
		batch := q.takeLocked()
		if len(batch) == 0 {
			if h == inWriter {
				q.direct.Store(0) // the burst is over
			}
			q.giveUpLocked()
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		if !c.writeBatch(batch, h) {
			return // handed over, or failed
		}
		q.release(batch)
	}
}

// flush is flushAs for a routing goroutine (direct) or a writer goroutine.
func (c *conn) flush(direct bool) {
	if direct {
		c.flushAs(inReader)
	} else {
		c.flushAs(inWriter)
	}
}

// writeBatch writes batch in chunks of at most maxBatch bytes. It reports
// false when it has handed the rest to a writer goroutine (direct) or the
// connection has failed; the right to write then belongs to the writer, or
// has been given up (by a writer goroutine, for a sender).
func (c *conn) writeBatch(batch []queued, h how) bool {
	direct := h != inWriter
	for len(batch) > 0 {
		wb := getWbuf()
		k := c.encode(wb, batch)
		chunk := batch[:k]
		batch = batch[k:]
		bytes := wb.size()
		if bytes == 0 {
			putWbuf(wb)
			continue
		}
		c.countOut(wb, bytes)
		if direct {
			n, err := c.tryWrite(wb)
			if err == nil {
				wb.advance(n)
				if len(wb.segs) == 0 && wb.tail != nil {
					err = c.spliceTail(wb, false)
				}
			}
			if err != nil {
				c.uncountOut(wb, bytes)
				putWbuf(wb)
				dropTails(batch)
				if h == inSender {
					// Closing runs the connection's hooks: not in the
					// sender's goroutine, which may hold its own locks.
					go c.fail(err)
				} else {
					c.fail(err)
				}
				return false
			}
			if !wb.empty() {
				// The socket is full: a writer goroutine finishes this
				// batch and what follows it, blocking as it may.
				c.wrote(wb, chunk)
				go c.finish(wb, chunk, batch)
				return false
			}
		} else if err := c.writeBlocking(wb); err != nil {
			c.uncountOut(wb, bytes)
			putWbuf(wb)
			dropTails(batch)
			c.fail(err)
			return false
		}
		c.wrote(wb, chunk)
		putWbuf(wb)
		releaseLeases(chunk)
	}
	return true
}

// releaseLeases gives back the payload memory of written messages: the
// references of consecutive messages in one buffer (relayed frames cut
// from one slab) at once.
func releaseLeases(chunk []queued) {
	var l *lease
	var k int32
	for i := range chunk {
		if cl := chunk[i].lease; cl != nil {
			chunk[i].lease = nil
			if cl != l {
				if l != nil {
					l.releaseN(k)
				}
				l, k = cl, 0
			}
			k++
		}
	}
	if l != nil {
		l.releaseN(k)
	}
}

// finish is a writer goroutine started by a routing goroutine whose write
// the socket could not take in full: it writes the rest of wb (which holds
// chunk), and of batch,
// then what is queued, and gives up the right to write.
func (c *conn) finish(wb *wbuf, chunk, batch []queued) {
	err := c.writeBlocking(wb)
	putWbuf(wb)
	if err == nil {
		releaseLeases(chunk)
	}
	if err != nil {
		dropTails(batch)
		c.fail(err)
		return
	}
	if len(batch) > 0 && !c.writeBatch(batch, inWriter) {
		return
	}
	c.flush(false)
}

// writeBlocking writes wb in full, bounded by WriteTimeout.
//
// The deadline is cleared afterwards: it bounds this write only, and a
// passed deadline would fail the next non-blocking write (tryWrite, a
// cut-through's splice), closing the connection.
func (c *conn) writeBlocking(wb *wbuf) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.t.cfg.WriteTimeout))
	defer c.nc.SetWriteDeadline(time.Time{})
	if len(wb.segs) > 0 {
		bufs := net.Buffers(wb.segs)
		_, err := bufs.WriteTo(c.nc)
		wb.segs = wb.segs[:0]
		if err != nil {
			return err
		}
	}
	if wb.tail != nil {
		return c.spliceTail(wb, true)
	}
	return nil
}

// fail closes the connection after a write error and gives up the right to
// write.
func (c *conn) fail(err error) {
	c.close(fmt.Errorf("write: %w", err))
	q := c.queue
	q.mu.Lock()
	q.giveUpLocked()
	q.mu.Unlock()
}

// waitWriter waits until nobody holds the right to write; the connection
// has closed, so nobody takes it again.
func (c *conn) waitWriter() {
	q := c.queue
	for {
		q.mu.Lock()
		w := q.writing
		q.mu.Unlock()
		if !w {
			return
		}
		<-q.released
	}
}

// drain writes everything queued, waiting for whoever writes now, and
// closes the connection: graceful shutdown, run by the connection's reader.
func (c *conn) drain() {
	q := c.queue
	for {
		q.mu.Lock()
		if q.claimLocked() {
			q.mu.Unlock()
			break
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return
		}
		select {
		case <-q.released:
		case <-c.done:
			return
		}
	}
	c.flush(false)
	c.close(nil)
}

// enqueue queues m for writing. From a routing goroutine (ctx carries its
// reader) nothing is handed to another goroutine: once the routing of the
// reader's message has returned (so that a worker's reply is written only
// after what the worker did next, such as publishing a route), the reader
// writes what it queued with non-blocking writes; while it has more frames
// buffered, it writes only before it next reads, everything queued
// meanwhile in one write per connection (batching).
func (c *conn) enqueue(ctx context.Context, m queued) error {
	rd, _ := ctx.Value(readerKey{}).(*reader)
	if rd != nil && rd.lease != nil {
		// Queued while the reader routes a message whose frame lies in a
		// lent buffer: its payload, and its routes' address values too
		// (decoded in place), may lie there, whatever the payload's size.
		m.lease = rd.lease
		m.lease.retain()
		// It holds the whole buffer until written: count that against
		// SendQueueBytes, which bounds what a slow peer holds.
		m.size = max(m.size, cap(m.lease.buf))
	}
	err := c.enqueueLeased(ctx, m, rd)
	if err != nil && m.lease != nil {
		m.lease.release()
	}
	return err
}

func (c *conn) enqueueLeased(ctx context.Context, m queued, rd *reader) error {
	q := c.queue
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return &ConnError{Peer: c.name, Err: ErrClosed}
	}
	if !q.fits(&m) {
		q.mu.Unlock()
		return c.sendSlow(ctx, m, rd)
	}
	q.appendLocked(m)
	if q.writing {
		q.mu.Unlock()
		return nil
	}
	if rd != nil {
		// Written when the routing of the reader's message returns, or
		// while more input is buffered, before the reader next reads.
		if q.deferred != rd {
			q.deferred = rd
			rd.pending = append(rd.pending, c)
		}
		q.mu.Unlock()
		return nil
	}
	q.writing = true
	alone := len(q.msgs) == 1 && m.size <= maxSenderDirectSize && q.direct.Load() < maxSenderDirect
	if alone {
		q.direct.Add(1)
	}
	q.mu.Unlock()
	if alone {
		// The queue was empty, nobody was writing, and this is one of the
		// first sends since input arrived or the last burst was written: the
		// sender writes its message itself, with a non-blocking write (no
		// hand-off to a writer goroutine); what the socket does not take
		// goes to one. The claim above, under the queue's lock, makes the
		// queue's order the write order, whoever else sends.
		c.flushAs(inSender)
		return nil
	}
	c.startFlush(false)
	return nil
}

// startFlush hands the right to write, held by the caller, to flush: in a
// routing goroutine directly, else in a writer goroutine (an application's
// sender never waits on the socket while there is room in the queue).
func (c *conn) startFlush(direct bool) {
	if direct {
		c.flush(true)
		return
	}
	go c.flush(false)
}

// sendSlow waits for room in a full queue, as Config.QueueFullWait says.
func (c *conn) sendSlow(ctx context.Context, m queued, rd *reader) error {
	if rd != nil {
		rd.flushPending()
	}
	q := c.queue
	wait := c.t.cfg.QueueFullWait
	var expired <-chan time.Time
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		expired = tm.C
	}
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return &ConnError{Peer: c.name, Err: ErrClosed}
		}
		if q.fits(&m) {
			q.appendLocked(m)
			start := q.claimLocked()
			room := q.fits(&queued{})
			q.mu.Unlock()
			if room {
				signal(q.space) // room may remain for another waiter
			}
			if start {
				c.startFlush(rd != nil)
			}
			return nil
		}
		if q.claimLocked() {
			// Full, and nobody writing: a deferred batch. Write it.
			q.mu.Unlock()
			c.startFlush(rd != nil)
			continue
		}
		q.mu.Unlock()
		if wait < 0 {
			c.t.stats.queueFull.Add(1)
			return &ConnError{Peer: c.name, Err: ErrQueueFull}
		}
		if err := q.waitSpace(ctx, c.done, expired); err != nil {
			if errors.Is(err, ErrClosed) {
				return &ConnError{Peer: c.name, Err: ErrClosed}
			}
			c.t.stats.queueFull.Add(1)
			if errors.Is(err, ErrQueueFull) {
				return &ConnError{Peer: c.name, Err: ErrQueueFull}
			}
			return &ConnError{Peer: c.name, Err: fmt.Errorf("%w: %w", ErrQueueFull, err)}
		}
	}
}

// appendLargeHead appends to b the length prefix of a frame of frameLen
// bytes and the head of a message whose payload of payloadLen bytes is
// written apart: head (with no payload) encoded up to and including the
// payload's length. encode and cut-through both use it, so that a frame
// cut through has the same bytes as one written the usual way.
func appendLargeHead(b []byte, head *routing.TransportMessage, frameLen, payloadLen int) ([]byte, error) {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(frameLen))
	b, err := head.AppendBinary(b)
	if err != nil {
		return b[:start], err
	}
	// The empty payload's length (one byte, 0) becomes the real one.
	return binary.AppendUvarint(b[:len(b)-1], uint64(payloadLen)), nil
}
