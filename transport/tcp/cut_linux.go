//go:build linux

package tcp

import (
	"errors"
	"fmt"
	"os"
	"sync"
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
	// pipeSize holds a whole frame however the kernel cuts it: a pipe
	// holds pipeSize/4096 buffers, one per piece of a socket buffer.
	pipeSize = 256 << 10
)

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
	fSetPipeSize   = 1031
)

// pipe is a pipe of the pool; n bytes are in it.
type pipe struct {
	r, w int
	n    int
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
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), fSetPipeSize, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}
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
	head    []byte           // the outgoing head, encoded
	iov     [2]syscall.Iovec // the head and the payload bytes read with it
	pre     int              // bytes of them put in the pipe
	want    int              // bytes of the frame still to come from the source socket
	moved   int              // bytes moved from the socket into the pipe
	extra   int              // of which beyond the frame: the next frame's first bytes
	full    bool
	eof     bool
	p       *pipe
	err     error
	inFn    func(uintptr) bool
	outFn   func(uintptr) bool
	outLeft int
	peek    int        // bytes to take from the socket after the frame
	slot    headSlot   // the last outgoing head, lent to pipes (headpage_linux.go)
	src     sinkSource // a splice into a worker's socket (sink_linux.go)
}

// cutThrough tries to relay the large partial frame of n bytes at the
// head of the read buffer (see cut.go). It reports whether it did; if it
// did not but has read part of the payload (into a pipe), it returns the
// frame's body for the usual path. An error closes the source connection,
// as a read error would.
func (rd *reader) cutThrough(n int) (bool, []byte, error) {
	c := rd.c
	t := c.t
	if c.rc == nil {
		return false, nil, nil
	}
	buffered := rd.buf[rd.r+FrameHeaderSize : rd.w]
	plan, ok := rd.planCut(buffered, n)
	if !ok {
		// After a frame cut through, the reader read as much as that
		// frame's head took: a longer head may not be all here yet.
		if rd.readMax > 0 && len(buffered) < cutPeek {
			_, _, _, _, rd.cutShort = cutHead(buffered)
		}
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
	// The pipe gets the outgoing frame in order: its head and the payload
	// bytes read with it (copied in), then the rest of the payload from
	// the socket.
	var err error
	if cs.head, err = plan.appendHead(cs.head[:0]); err != nil {
		// Unreachable: the head was decoded from the wire.
		putPipe(p)
		return false, nil, nil
	}
	rest := buffered[plan.headLen:]
	cs.pre = len(cs.head) + len(rest)
	var k int
	if len(rest) == 0 && cs.slot.lends(cs.head) {
		// The head the last frame had: lent, not copied.
		k, err = vmsplicePipe(p.w, cs.slot.b)
		headsLent.Add(1)
	} else {
		if len(rest) == 0 {
			// Lent to the next frame if it has the same head.
			cs.slot.release()
			cs.slot, _ = takeHeadSlot(cs.head)
		}
		cs.iov[0] = syscall.Iovec{Base: &cs.head[0]}
		cs.iov[0].SetLen(len(cs.head))
		nv := 1
		if len(rest) > 0 {
			cs.iov[1] = syscall.Iovec{Base: &rest[0]}
			cs.iov[1].SetLen(len(rest))
			nv = 2
		}
		k, err = writePipe(p.w, cs.iov[:nv])
		cs.iov = [2]syscall.Iovec{}
	}
	if cap(cs.head) > cutPeek {
		// A long head (a peer's long return route) is not kept for the
		// connection's life: an idle connection holds no buffer.
		cs.head = nil
	}
	if k > 0 {
		p.n += k
	}
	if err != nil || k < cs.pre {
		discardPipe(p)
		return false, nil, nil
	}
	cs.p, cs.want, cs.moved = p, n-len(buffered), 0
	// What follows the frame in the socket is taken with it, up to what
	// this frame's head took: the next frame's head if it has the same
	// routes, and none of its payload, which is then spliced too.
	cs.peek = min(FrameHeaderSize+plan.headLen, cutPeek)
	if err := rd.fillPipe(); err != nil {
		discardPipe(p)
		return false, nil, err
	}
	cs.extra = max(cs.moved-cs.want, 0)
	if cs.moved < cs.want {
		// The pipe is full, the peer closed, or the socket failed: the
		// usual path, with what the pipe holds. Nothing was written
		// anywhere.
		return rd.uncut(n, p)
	}
	// The route is judged again now that the frame is whole, as the usual
	// path judges it: a forwarder stopped, or a name moved, before the
	// frame's last byte came must not take it where it used to lead. Always:
	// the payload may have come while this reader did not wait for it (it
	// arrived as fillPipe moved it, or while the reader was descheduled
	// after planning), and that is no shorter a time for the route to
	// change in.
	again, ok := rd.planCut(buffered, n)
	if !ok || again.dst != plan.dst || !again.out.Onward.Equal(plan.out.Onward) {
		return rd.uncut(n, p)
	}
	plan.res = again.res
	dst := plan.dst
	q := dst.queue
	q.mu.Lock()
	if q.closed || q.writing || len(q.msgs) > 0 {
		q.mu.Unlock()
		return rd.uncut(n, p)
	}
	q.writing = true
	q.mu.Unlock()

	// From here on the frame is relayed (or, if the destination fails,
	// lost with it, as a queued message is).
	t.node.Commit(&plan.res)
	t.stats.cut.Add(1)
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(n + FrameHeaderSize))
	rd.r, rd.w = 0, 0
	rd.frameStart = time.Time{}
	var at time.Time
	if dst.sample.Add(1)%latencySampleEvery == 0 {
		at = time.Now()
	}
	total := FrameHeaderSize + plan.frameLen
	dst.framesOut.Add(1)
	dst.bytesOut.Add(uint64(total))
	cs.outLeft, cs.err = p.n-cs.extra, nil
	err = dst.rc.Write(cs.outFn)
	if err == nil {
		err = cs.err
	}
	switch {
	case err != nil:
		dst.framesOut.Add(^uint64(0))
		dst.bytesOut.Add(-uint64(total))
		dst.fail(err)
		if err := dropPipe(p, cs.outLeft); err != nil {
			return true, nil, err
		}
		return true, nil, rd.takeExtra(p)
	case cs.outLeft == 0:
		dst.cutWrote(at)
		dst.flush(true) // what was queued meanwhile; gives the right up
		return true, nil, rd.takeExtra(p)
	}
	// The socket is full: a writer goroutine writes the rest of the frame
	// (read back from the pipe), and what is queued after it.
	wb := getWbuf()
	b, perr := readPipe(p, wb.b[:cs.outLeft])
	if perr != nil {
		// Unreachable in practice; the destination has part of a frame.
		putWbuf(wb)
		dst.fail(perr)
		discardPipe(p)
		return true, nil, perr
	}
	wb.b = b
	wb.seal()
	dst.cutWrote(at)
	go dst.finish(wb, nil, nil)
	return true, nil, rd.takeExtra(p)
}

// takeExtra moves the bytes that followed the frame in the socket, and
// came into the pipe with it (cs.extra), to the empty read buffer, and
// gives the pipe back. An error loses them: the connection must close.
func (rd *reader) takeExtra(p *pipe) error {
	if k := rd.cs.extra; k > 0 {
		b, err := readPipe(p, rd.buf[:k])
		if err != nil {
			discardPipe(p)
			return err
		}
		rd.r, rd.w = 0, len(b)
	}
	putPipe(p)
	return nil
}

// dropPipe reads k bytes from p and throws them away.
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
// readLarge does, and with it up to cs.peek bytes that follow it, if they
// are there (the next frame's head: one read fewer). It stops short, with
// no error, if the pipe is full or the peer closed; an error is the
// reader's (a timeout, a shutdown).
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
// frame into the pipe, and asks to wait for more (false) when that is not
// all of it.
func (rd *reader) spliceIn(fd uintptr) bool {
	cs := rd.cs
	for cs.moved < cs.want {
		m, err := syscall.Splice(int(fd), nil, cs.p.w, nil, cs.want+cs.peek-cs.moved, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			// The socket is empty, or the pipe full (then the socket
			// still has bytes).
			if q, err := ioctlInt(fd, syscall.TIOCINQ); err != nil || q > 0 {
				cs.full = true
				return true
			}
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

// cutWrote accounts for a frame cut through to c: the idle clock and, if
// it was sampled, the relay latency.
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

// uncut returns a frame whose payload (or part of it) went into p to the
// usual path: its body is read back from the pipe, then the rest from
// the socket.
func (rd *reader) uncut(n int, p *pipe) (bool, []byte, error) {
	// First the outgoing head and the payload bytes read with it: the
	// usual path has them in the read buffer.
	if err := dropPipe(p, rd.cs.pre); err != nil {
		return false, nil, err
	}
	body, err := rd.readLarge(n, p)
	if err == nil && p.n > 0 {
		// The next frame's first bytes (cs.extra), to the read buffer
		// readLarge emptied.
		err = rd.takeExtra(p)
		return false, body, err
	}
	putPipe(p)
	return false, body, err
}

// peekAfterCut is how much the reader reads after a frame cut through
// (read.go): as much as its head took, so that the next frame's payload,
// if its head is the same, stays in the socket, and none of it is copied.
func (rd *reader) peekAfterCut() int {
	if rd.cs != nil && rd.cs.peek > 0 {
		return rd.cs.peek
	}
	return cutPeek
}

// dropCut gives back what the cut-through state holds between frames (a
// lent head), as a reader does when it closes.
func (rd *reader) dropCut() {
	if rd.cs != nil {
		rd.cs.slot.release()
	}
}

// parkCut is dropCut for a reader that goes idle: its lent head's slot
// pins no chunk while it waits, and is lent again if it can be.
func (rd *reader) parkCut() {
	if rd.cs != nil {
		rd.cs.slot.park()
	}
}

// cut returns the reader's cut-through state, made on first use.
func (rd *reader) cut() *cutState {
	if rd.cs == nil {
		cs := &cutState{}
		cs.inFn = rd.spliceIn
		cs.outFn = rd.spliceOut
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

// spliceOut moves what the pipe holds into the destination socket (fd),
// never waiting; cs.outLeft is what it could not.
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
