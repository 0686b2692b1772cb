//go:build linux

package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Pipes are file descriptors, and a hub may serve tens of thousands of
// connections within a descriptor budget: no connection holds one. A
// reader takes a pipe for one cut-through and gives it back empty; at
// most maxIdlePipes wait in the pool, and at most maxPipes are open at
// once (a cut-through that finds none takes the usual path).
const (
	maxIdlePipes = 8
	maxPipes     = 64
	// pipeSize holds a whole frame however the kernel cuts it (a pipe
	// holds pipeSize/4096 buffers, one per piece of a socket buffer), and
	// a batch of up to eight 60 KB frames (cutThrough). 64 such pipes are
	// half the pages a user's pipes may hold by default
	// (/proc/sys/fs/pipe-user-pages-soft).
	pipeSize = 512 << 10
)

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
	fSetPipeSize   = 1031
)

// pipe is a pipe of the pool; n bytes are in it, of at most size.
type pipe struct {
	r, w int
	n    int
	size int
}

var pipes struct {
	mu   sync.Mutex
	free []*pipe
	open int // pipes open, in the pool or taken
}

// getPipe takes a pipe from the pool, or opens one; nil when maxPipes are
// open or opening failed.
func getPipe() *pipe {
	pipes.mu.Lock()
	if k := len(pipes.free); k > 0 {
		p := pipes.free[k-1]
		pipes.free[k-1] = nil
		pipes.free = pipes.free[:k-1]
		pipes.mu.Unlock()
		return p
	}
	if pipes.open >= maxPipes {
		pipes.mu.Unlock()
		return nil
	}
	pipes.open++
	pipes.mu.Unlock()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		pipes.mu.Lock()
		pipes.open--
		pipes.mu.Unlock()
		return nil
	}
	// A failure leaves the default size (16 buffers): a frame that does
	// not fit takes the usual path.
	size, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), fSetPipeSize, pipeSize)
	if e != 0 {
		size = 16 << 12
	}
	return &pipe{r: fds[0], w: fds[1], size: int(size)}
}

// putPipe gives p back: to the pool if it is empty and the pool has room,
// else it is closed.
func putPipe(p *pipe) {
	pipes.mu.Lock()
	if p.n == 0 && len(pipes.free) < maxIdlePipes {
		pipes.free = append(pipes.free, p)
		pipes.mu.Unlock()
		return
	}
	pipes.open--
	pipes.mu.Unlock()
	syscall.Close(p.r)
	syscall.Close(p.w)
}

// readPipe reads len(b) bytes (at most p.n) from p into b and returns b.
func readPipe(p *pipe, b []byte) ([]byte, error) {
	for k := 0; k < len(b); {
		m, err := syscall.Read(p.r, b[k:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, fmt.Errorf("tcp: reading a pipe: %w", err)
		case m == 0:
			return nil, errors.New("tcp: reading a pipe: unexpected end")
		}
		k += m
		p.n -= m
	}
	return b, nil
}

// cutState holds a cut-through's arguments and results for the raw
// callbacks (method values made once per reader: no allocation per frame).
type cutState struct {
	p    *pipe
	head []byte           // the outgoing head, encoded
	iov  [2]syscall.Iovec // the head and the payload bytes read with it

	// the frame being filled: the bytes of it put in the pipe from the
	// read buffer (pre), those still to come from the source socket
	// (want), and those moved so far (moved)
	pre, want, moved int
	full, eof        bool
	try              bool // spliceIn moves what the socket has, never waits
	waited           bool // the frame waited (its route is then judged again)

	// the batch: whole frames in the pipe, to one destination, not written
	// yet: frames, bytes, and the time of one sampled for RelayLatency
	frames, bytes int
	at            time.Time

	err     error
	outLeft int // bytes of the batch spliceOut has yet to write
	peeked  int // bytes peekHead read
	inFn    func(uintptr) bool
	outFn   func(uintptr) bool
	peekFn  func(uintptr) bool
}

// maxCutBatch bounds the frames written with one splice.
const maxCutBatch = 16

// cutJoined counts the frames written in a batch after its first, and
// cutPartial the batches of several frames the destination's socket did
// not take in full (for tests).
var cutJoined, cutPartial atomic.Uint64

// cutThrough tries to relay the large partial frame of n bytes at the
// head of the read buffer (see cut.go). It reports whether it did; if it
// did not but has read part of the payload (into a pipe), it returns the
// frame's body for the usual path. An error closes the source connection,
// as a read error would.
//
// Once a frame is whole in the pipe and the right to write to its
// destination taken, the frames that follow it in the socket to the same
// destination join it in the pipe while each is whole already (nothing
// waits with the right held), and the batch is written with one splice. A
// frame the socket has only part of is written after the batch, as a
// first frame is; any other frame ends the batch and is left, as read, to
// the usual path.
func (rd *reader) cutThrough(n int) (bool, []byte, error) {
	c := rd.c
	if c.rc == nil {
		return false, nil, nil
	}
	plan, ok := rd.planCut(rd.buf[rd.r+FrameHeaderSize:rd.w], n)
	if !ok {
		return false, nil, nil
	}
	// What this reader deferred goes first (ordering per destination), and
	// nothing of it waits while the payload comes.
	rd.flushPending()
	p := getPipe()
	if p == nil {
		return false, nil, nil
	}
	cs := rd.cut()
	cs.p = p
	if !rd.putHead(&plan, false) {
		discardPipe(p)
		return false, nil, nil
	}
	relayed := false
	for {
		// The frame whose head is in the pipe (its head read is in the
		// read buffer): the rest of it, as it comes.
		if err := rd.fillPipe(); err != nil {
			discardPipe(p)
			return relayed, nil, err
		}
		if cs.moved < cs.want {
			// The pipe is full, the peer closed, or the socket failed:
			// the usual path, with what the pipe holds. Nothing of this
			// frame was written anywhere.
			return rd.uncut(n, p)
		}
		if cs.waited {
			// The route is judged again now that the frame is whole, as
			// the usual path judges it: a forwarder stopped, or a name
			// moved, while the payload came must not take it where it
			// used to lead.
			again, ok := rd.planCut(rd.buf[rd.r+FrameHeaderSize:rd.w], n)
			if !ok || again.dst != plan.dst || !again.out.Onward.Equal(plan.out.Onward) {
				return rd.uncut(n, p)
			}
			plan.res = again.res
		}
		dst := plan.dst
		q := dst.queue
		q.mu.Lock()
		if q.closed || q.writing || len(q.msgs) > 0 {
			q.mu.Unlock()
			return rd.uncut(n, p)
		}
		q.writing = true
		q.mu.Unlock()

		// From here on the frame is relayed (or, if the destination
		// fails, lost with it, as a queued message is).
		relayed = true
		cs.frames, cs.bytes, cs.at = 0, 0, time.Time{}
		rd.commitCut(&plan, n)
		next, nn, partial := rd.appendCuts(dst)
		if err := rd.writeCuts(dst); err != nil {
			return true, nil, err
		}
		if !partial {
			putPipe(p)
			return true, nil, nil
		}
		// A frame to the same destination that the socket had only part
		// of: its head and what had come of it are in the pipe.
		plan, n = next, nn
	}
}

// putHead writes into the pipe the outgoing head of plan's frame and the
// payload bytes read with it (all of the read buffer after the incoming
// head), and makes it the frame being filled. With atomic it writes all of
// it or nothing (a write of at most PIPE_BUF bytes to a pipe is atomic),
// as a frame joining a batch must; it reports whether it wrote all.
func (rd *reader) putHead(plan *cutPlan, atomic bool) bool {
	cs := rd.cs
	buffered := rd.buf[rd.r+FrameHeaderSize : rd.w]
	var err error
	if cs.head, err = plan.appendHead(cs.head[:0]); err != nil {
		// Unreachable: the head was decoded from the wire.
		return false
	}
	pre := len(cs.head) + len(buffered) - plan.headLen
	if atomic && pre > pipeAtomic {
		return false
	}
	cs.iov[0] = syscall.Iovec{Base: &cs.head[0]}
	cs.iov[0].SetLen(len(cs.head))
	nv := 1
	if rest := buffered[plan.headLen:]; len(rest) > 0 {
		cs.iov[1] = syscall.Iovec{Base: &rest[0]}
		cs.iov[1].SetLen(len(rest))
		nv = 2
	}
	k, err := writePipe(cs.p.w, cs.iov[:nv])
	cs.iov = [2]syscall.Iovec{}
	if cap(cs.head) > cutPeek {
		// A long head (a peer's long return route) is not kept for the
		// connection's life: an idle connection holds no buffer.
		cs.head = nil
	}
	if k > 0 {
		cs.p.n += k
	}
	if err != nil || k < pre {
		return false
	}
	cs.pre, cs.want, cs.moved, cs.waited = pre, plan.payload-(len(buffered)-plan.headLen), 0, false
	return true
}

// pipeAtomic is PIPE_BUF: a write to a pipe of at most this many bytes
// either writes all of them or, if the pipe has no room, none.
const pipeAtomic = 4096

// commitCut accounts for the frame of n bytes, whole in the pipe, that
// joins the batch to its destination, whose right to write is held, as the
// usual path would account for it (the destination's counters are counted
// when the batch is written), and empties the read buffer.
func (rd *reader) commitCut(plan *cutPlan, n int) {
	c := rd.c
	t := c.t
	cs := rd.cs
	t.node.Commit(&plan.res)
	t.stats.cut.Add(1)
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(n + FrameHeaderSize))
	rd.r, rd.w = 0, 0
	rd.frameStart = time.Time{}
	if plan.dst.sample.Add(1)%latencySampleEvery == 0 && cs.at.IsZero() {
		cs.at = time.Now()
	}
	cs.frames++
	cs.bytes += FrameHeaderSize + plan.frameLen
}

// appendCuts adds to the batch to dst the frames that follow in the source
// socket, as long as each is a large frame to dst that is whole in the
// socket already and fits in the pipe. It reads the next frame's head (at
// most cutPeek bytes) without waiting; a frame that is not for the batch is
// left in the read buffer for the usual path. If a frame to dst is only
// partly in the socket, its head and what had come of it stay in the pipe
// after the batch, and appendCuts returns its plan and length, and true.
func (rd *reader) appendCuts(dst *conn) (cutPlan, int, bool) {
	c := rd.c
	t := c.t
	cs := rd.cs
	for cs.frames < maxCutBatch && t.cfg.MessageRate <= 0 && !isClosed(t.draining) {
		// The read buffer is empty: the next bytes, if the socket has
		// them.
		cs.peeked = 0
		if err := c.rc.Read(cs.peekFn); err != nil || cs.peeked == 0 {
			break
		}
		rd.w = cs.peeked
		rd.gotInput()
		if rd.w < FrameHeaderSize {
			break
		}
		n := int(binary.BigEndian.Uint16(rd.buf))
		if n < largeFrameDirectly || n > t.cfg.MaxFrameSize || FrameHeaderSize+n <= rd.w {
			break
		}
		plan, ok := rd.planCut(rd.buf[FrameHeaderSize:rd.w], n)
		if !ok || plan.dst != dst || cs.p.n+FrameHeaderSize+plan.frameLen > cs.p.size {
			break
		}
		if !rd.putHead(&plan, true) {
			break // the pipe is full: nothing was written
		}
		cs.try = true
		err := c.rc.Read(cs.inFn)
		cs.try = false
		if err != nil {
			cs.err = err
		}
		if cs.moved < cs.want {
			// A partial frame: its time runs from now, as the usual path's.
			rd.frameStart = time.Now()
			rd.setDeadline(rd.frameStart.Add(t.cfg.FrameTimeout))
			cs.waited = true
			return plan, n, true
		}
		rd.commitCut(&plan, n)
	}
	return cutPlan{}, 0, false
}

// peekHead is appendCuts' callback: one read of at most cutPeek bytes into
// the empty read buffer, never waiting; a failure reads nothing (the next
// read of the usual path meets it again).
func (rd *reader) peekHead(fd uintptr) bool {
	for {
		m, err := syscall.Read(int(fd), rd.buf[:cutPeek])
		if err == syscall.EINTR {
			continue
		}
		if err == nil && m > 0 {
			rd.cs.peeked = m
		}
		return true
	}
}

// writeCuts writes the batch (the pipe's first cs.bytes bytes) to dst,
// whose right to write is held, without waiting, and gives the right up.
// If the socket fills up part-way, the rest of the batch is read from the
// pipe into a buffer and handed, with the right, to a writer goroutine. An
// error is the reader's: the pipe is then gone.
func (rd *reader) writeCuts(dst *conn) error {
	cs := rd.cs
	p := cs.p
	dst.framesOut.Add(uint64(cs.frames))
	if cs.frames > 1 {
		cutJoined.Add(uint64(cs.frames - 1))
	}
	dst.bytesOut.Add(uint64(cs.bytes))
	cs.outLeft, cs.err = cs.bytes, nil
	err := dst.rc.Write(cs.outFn)
	if err == nil {
		err = cs.err
	}
	switch {
	case err != nil:
		dst.framesOut.Add(-uint64(cs.frames))
		dst.bytesOut.Add(-uint64(cs.bytes))
		dst.fail(err)
		return dropPipe(p, cs.outLeft)
	case cs.outLeft == 0:
		dst.cutWrote(cs.at)
		dst.flush(true) // what was queued meanwhile; gives the right up
		return nil
	}
	if cs.frames > 1 {
		cutPartial.Add(1)
	}
	// The socket is full: a writer goroutine writes the rest (read back
	// from the pipe), and what is queued after it.
	wb := getWbuf()
	if cap(wb.b) < cs.outLeft {
		wb.b = make([]byte, 0, cs.outLeft)
	}
	b, perr := readPipe(p, wb.b[:cs.outLeft])
	if perr != nil {
		// Unreachable in practice; the destination has part of a frame.
		putWbuf(wb)
		dst.fail(perr)
		discardPipe(p)
		return perr
	}
	wb.b = b
	dst.cutWrote(cs.at)
	go dst.finishCut(wb)
	return nil
}

// finishCut is the writer goroutine of a batch the destination's socket
// did not take in full: it writes the rest (wb.b) in pieces of at most
// maxBatch bytes, each bounded by WriteTimeout as a writer goroutine's
// batches are (not the whole batch at once), then what is queued, and
// gives up the right to write.
func (c *conn) finishCut(wb *wbuf) {
	b := wb.b
	for len(b) > maxBatch {
		wb.segs = append(wb.segs[:0], b[:maxBatch])
		if err := c.writeBlocking(wb); err != nil {
			putWbuf(wb)
			c.fail(err)
			return
		}
		b = b[maxBatch:]
	}
	wb.segs = append(wb.segs[:0], b)
	c.finish(wb, nil, nil)
}

// dropPipe reads k bytes from p and throws them away; if that fails, p is
// discarded.
func dropPipe(p *pipe, k int) error {
	var scratch [4096]byte
	for k > 0 {
		b, err := readPipe(p, scratch[:min(k, len(scratch))])
		if err != nil {
			discardPipe(p)
			return err
		}
		k -= len(b)
	}
	return nil
}

// writePipe copies the bytes of iov into the pipe fd with one writev.
// (Not vmsplice: a pipe would then refer to this memory, which is reused,
// and so would the destination's socket buffers after a splice.)
func writePipe(fd int, iov []syscall.Iovec) (int, error) {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// fillPipe moves the rest of the frame (cs.want bytes) from the socket
// into the pipe as it arrives, waiting for it under the frame timeout as
// readLarge does. It stops short, with no error, if the pipe is full or the
// peer closed; an error is the reader's (a timeout, a shutdown).
func (rd *reader) fillPipe() error {
	cs := rd.cs
	t := rd.c.t
	cs.full, cs.eof, cs.err = false, false, nil
	for {
		if isClosed(t.draining) {
			return errDraining
		}
		err := rd.c.rc.Read(cs.inFn)
		if err == nil {
			if cs.err != nil && cs.moved < cs.want {
				// The usual path reads the socket and meets the error.
				cs.err = nil
			}
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if isClosed(t.draining) {
			return errDraining
		}
		rd.deadline = time.Time{}
		end := rd.frameStart.Add(t.cfg.FrameTimeout)
		if !time.Now().Before(end) {
			t.stats.timeouts.Add(1)
			return errors.New("partial frame timed out")
		}
		rd.setDeadline(end)
	}
}

// spliceIn is fillPipe's callback: it moves what the socket has of the
// frame (and nothing after it) into the pipe, and asks to wait for more
// (false) when that is not all of it, unless cs.try.
func (rd *reader) spliceIn(fd uintptr) bool {
	cs := rd.cs
	for cs.moved < cs.want {
		m, err := syscall.Splice(int(fd), nil, cs.p.w, nil, cs.want-cs.moved, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if cs.try {
				return true
			}
			// The socket is empty, or the pipe full (then the socket
			// still has bytes).
			if q, err := ioctlInt(fd, syscall.TIOCINQ); err != nil || q > 0 {
				cs.full = true
				return true
			}
			cs.waited = true
			return false
		case err != nil:
			cs.err = err
			return true
		case m == 0:
			cs.eof = true // the peer closed: the usual path finds out
			return true
		}
		cs.moved += int(m)
		cs.p.n += int(m)
	}
	return true
}

// cutWrote accounts for frames cut through to c: the idle clock and, if
// one was sampled, the relay latency.
func (c *conn) cutWrote(at time.Time) {
	if c.t.cfg.IdleTimeout > 0 {
		c.lastWrite.Store(time.Now().UnixNano())
	}
	if !at.IsZero() {
		c.t.latency.observe(time.Since(at))
	}
}

// discardPipe empties p and gives it back (closed if that fails).
func discardPipe(p *pipe) {
	var scratch [4096]byte
	for p.n > 0 {
		if _, err := readPipe(p, scratch[:min(p.n, len(scratch))]); err != nil {
			break
		}
	}
	putPipe(p)
}

// uncut returns the frame being filled, whose payload (or part of it)
// went into p, to the usual path: its body is read back from the pipe,
// then the rest from the socket. The pipe holds nothing before it.
func (rd *reader) uncut(n int, p *pipe) (bool, []byte, error) {
	// First the outgoing head and the payload bytes read with it: the
	// usual path has them in the read buffer.
	if err := dropPipe(p, rd.cs.pre); err != nil {
		return false, nil, err
	}
	body, err := rd.readLarge(n, p)
	putPipe(p) // closed if anything is left in it
	return false, body, err
}

// cut returns the reader's cut-through state, made on first use.
func (rd *reader) cut() *cutState {
	if rd.cs == nil {
		cs := &cutState{}
		cs.inFn = rd.spliceIn
		cs.outFn = rd.spliceOut
		cs.peekFn = rd.peekHead
		rd.cs = cs
	}
	return rd.cs
}

func ioctlInt(fd uintptr, req uint) (int, error) {
	var v int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(req), uintptr(unsafe.Pointer(&v)))
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}

// spliceOut moves the batch (cs.outLeft bytes) from the pipe into the
// destination socket (fd), never waiting; cs.outLeft is what it could not.
func (rd *reader) spliceOut(fd uintptr) bool {
	cs := rd.cs
	cs.err = nil
	for cs.outLeft > 0 {
		m, err := syscall.Splice(cs.p.r, nil, int(fd), nil, cs.outLeft, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err == syscall.EINVAL, err == syscall.ENOSYS, err == syscall.EOPNOTSUPP, m == 0 && err == nil:
			// This socket (or kernel) does not take spliced pages: what
			// is left is written the usual way, as when the socket is
			// full.
			return true
		case err != nil:
			cs.err = err
			return true
		}
		cs.outLeft -= int(m)
		cs.p.n -= int(m)
	}
	return true
}
