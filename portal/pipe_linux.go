//go:build linux

package portal

import (
	"encoding/binary"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/routing"
)

// Zero-copy sending (Linux). A plain portal whose route's first hop is a
// TCP connection (no secure channel, no other local worker on the way)
// moves the bytes of its local socket to that connection's socket without
// copying them through user memory: the reader splices up to a chunk from
// its socket into a pipe, and hands the TCP transport the Data message's
// head with the pipe as its payload's tail (node.PipeTail); the
// transport writes the frame's head with whatever else it writes and
// splices the pipe into its socket, then gives the pipe back. The frame
// on the wire is the one the usual path sends.
//
// Pipes are file descriptors: they are pooled, at most maxPortalPipes are
// open in the process, and at most pipesPerPortal are in flight per
// portal; a read that finds none takes the usual path (the order of the
// portal's messages is the connection's queue order either way).
const (
	maxPortalPipes = 128
	maxIdlePipes   = 16
	pipesPerPortal = 16
	// portalPipeSize: a socket's bytes may come in pieces smaller than a
	// page, one pipe buffer each; a larger pipe holds a whole chunk more
	// often. A pipe that cannot be grown holds less: shorter reads.
	portalPipeSize = 128 << 10
)

// pipeTail is a pipe of the pool, in flight as the tail of one message.
type pipeTail struct {
	r, w  int
	n     int
	owner *pconn
}

var pipePool struct {
	mu   sync.Mutex
	free []*pipeTail
	open int
}

// spliced counts the messages sent with a pipe tail (tests).
var spliced atomic.Uint64

// Pipe returns the pipe's read end and the bytes in it (node.PipeTail).
func (t *pipeTail) Pipe() (int, int) { return t.r, t.n }

// Done takes the pipe back from the transport (node.PipeTail): to the
// pool if it was emptied, else it is closed.
func (t *pipeTail) Done(written bool) {
	if t.owner != nil {
		t.owner.pipes.Add(-1)
		t.owner = nil
	}
	if written {
		t.n = 0
	}
	putPortalPipe(t, written)
}

func getPortalPipe() *pipeTail {
	pipePool.mu.Lock()
	if k := len(pipePool.free); k > 0 {
		t := pipePool.free[k-1]
		pipePool.free[k-1] = nil
		pipePool.free = pipePool.free[:k-1]
		pipePool.mu.Unlock()
		return t
	}
	if pipePool.open >= maxPortalPipes {
		pipePool.mu.Unlock()
		return nil
	}
	pipePool.open++
	pipePool.mu.Unlock()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		pipePool.mu.Lock()
		pipePool.open--
		pipePool.mu.Unlock()
		return nil
	}
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), syscall.F_SETPIPE_SZ, portalPipeSize)
	return &pipeTail{r: fds[0], w: fds[1]}
}

// putPortalPipe gives t back: to the pool when it is empty (reusable) and
// the pool has room, else closed.
func putPortalPipe(t *pipeTail, empty bool) {
	pipePool.mu.Lock()
	if empty && len(pipePool.free) < maxIdlePipes {
		pipePool.free = append(pipePool.free, t)
		pipePool.mu.Unlock()
		return
	}
	pipePool.open--
	pipePool.mu.Unlock()
	syscall.Close(t.r)
	syscall.Close(t.w)
}

// takePipe returns a pipe for the next read when it may be spliced:
// streaming (the reader has switched to chunks), flow controlled (the
// read is bounded by the peer's credit, and goes as Data), G3, a local
// TCP socket, and a route whose first hop is a connection of a
// transport that takes pipe tails. nil: the usual path.
func (c *pconn) takePipe(streaming bool) *pipeTail {
	if !streaming || c.rc == nil || len(c.route) == 0 || c.route[0].Type != routing.TCP {
		return nil
	}
	c.mu.Lock()
	ok := c.ext && c.gen == G3
	c.mu.Unlock()
	if !ok || !c.node.CanPipeTail(c.route[0]) {
		return nil
	}
	if c.pipes.Load() >= pipesPerPortal {
		return nil
	}
	t := getPortalPipe()
	if t == nil {
		return nil
	}
	c.pipes.Add(1)
	t.owner = c
	return t
}

// spliceSend splices up to n bytes from the local socket into t and sends
// them as one Data message with t as its tail. It returns the read's
// error (io.EOF at the end of the stream) and the send's; t is handed on
// or given back either way.
func (c *pconn) spliceSend(t *pipeTail, n int, waiting func()) (rerr, serr error) {
	// Never past the peer's limit: the usual path splits a read the
	// credit does not cover (sendRead), a splice cannot be split. n may
	// have been sized from a cap that shrank as it was computed (sendCap
	// reads the busy count, which other portals change); and a splice of
	// 0 bytes returns 0, which is not the end of the stream.
	c.mu.Lock()
	if credit := c.sendLimit - min(c.sent, c.sendLimit); uint64(n) > credit {
		n = int(credit)
	}
	c.mu.Unlock()
	if n <= 0 {
		t.Done(true) // untouched: empty, reusable
		return nil, nil
	}
	k, rerr := c.spliceLocal(t, n, waiting)
	if k == 0 {
		t.Done(true) // nothing went in: empty, reusable
		return rerr, nil
	}
	t.n = k
	c.smu.Lock()
	defer c.smu.Unlock()
	c.mu.Lock()
	off := c.sent
	c.mu.Unlock()
	h := binary.AppendUvarint(binary.AppendUvarint(append(make([]byte, 0, headroom), byte(TagData)), off), uint64(k))
	c.stats.bytesIn.Add(uint64(k))
	c.active.Store(time.Now().UnixNano())
	spliced.Add(1)
	return rerr, c.sendLockedTail(c.ctx, h, false, k, t)
}

// spliceLocal moves up to n bytes from the local socket into t's pipe,
// waiting for the socket to have some (calling waiting once before it
// waits), and returns how many it moved, with io.EOF at the end of the
// stream.
func (c *pconn) spliceLocal(t *pipeTail, n int, waiting func()) (int, error) {
	if c.sp == nil {
		c.sp = &spliceIn{}
		c.sp.fn = c.sp.attempt
	}
	s := c.sp
	s.t, s.n, s.k, s.err, s.waiting, s.relaxed = t, n, 0, nil, waiting, false
	err := c.rc.Read(s.fn)
	k, rerr := s.k, s.err
	s.t, s.waiting = nil, nil
	if err != nil {
		return 0, err
	}
	return k, rerr
}

// spliceIn holds a splice's arguments and results for its raw callback,
// made once per portal (no allocation per read). Used by the reader only.
type spliceIn struct {
	fn      func(fd uintptr) bool
	t       *pipeTail
	n, k    int
	err     error
	waiting func()
	relaxed bool
}

// attempt is one non-blocking splice; false: wait until readable, then
// attempt again.
func (s *spliceIn) attempt(fd uintptr) bool {
	for {
		m, err := syscall.Splice(int(fd), nil, s.t.w, nil, s.n, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			// The pipe is empty: the socket has nothing yet.
			if !s.relaxed {
				s.relaxed = true
				s.waiting()
			}
			return false
		case err != nil:
			s.err = os.NewSyscallError("splice", err)
		case m == 0:
			s.err = io.EOF
		default:
			s.k = int(m)
		}
		return true
	}
}

const (
	spliceMove     = 0x1 // SPLICE_F_MOVE
	spliceNonblock = 0x2 // SPLICE_F_NONBLOCK
)
