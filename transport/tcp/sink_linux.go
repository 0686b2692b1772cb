//go:build linux

package tcp

import (
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/node"
)

// Splicing into workers (unless Config.NoSplice): a large frame for an
// inline worker that writes its payload's bytes to a socket of its own
// (node.SpliceSink: a TCP portal) has its payload moved from this
// connection's socket to the worker's without reaching user space. It
// follows the cut-through (cut.go, cut_linux.go), and shares its pipes and
// its lessons: when the reader has the head of a large frame buffered and
// at least spliceMinUnread bytes of it still in the socket, planSink
// decodes the message's head and resolves its destination without side
// effects, and the worker says, from its payload's first bytes, whether it
// could take the message now and how long its own header is
// (SpliceSink.SpliceHead). Then the reader
//
//  1. takes a pipe, copies into it the data bytes it had read with the
//     head, and moves the rest of the frame from the socket into the pipe
//     as it arrives, under the frame timeout, as a partial frame waits
//     today (and up to cutPeek bytes that follow: the next frame's head).
//     Nothing has been given to the worker yet: a source that stalls or
//     dies mid-frame costs only itself;
//  2. judges the route again, now that the frame is whole (a worker
//     stopped meanwhile must not get it), and hands the message to the
//     worker (SpliceSink.SpliceMessage), which checks it again and either
//     takes it, splicing what its socket takes at once from the pipe
//     (never waiting) and reading the rest from the pipe into memory for
//     its writer, or declines, having taken nothing;
//  3. in every other case (a head that does not decode, a busy or stopped
//     worker, no pipe, a frame that does not complete) the frame takes the
//     usual path, its payload read back from the pipe: the worker's
//     HandleMessage handles it, and its errors.

// spliceMinUnread is how much of a frame must still be in the socket for
// its payload to be spliced into a worker: less is cheaper to read.
const spliceMinUnread = largeFrameDirectly

// sinkPlan is what planSink found out about a large frame.
type sinkPlan struct {
	sink      node.SpliceSink
	res       node.Resolution
	headLen   int // bytes of the body before the payload
	dataStart int // bytes of the body before the data: the head, then the worker's header
}

// planSink decides whether the frame of n bytes whose first bytes are p
// (the rest is still in the socket) may have its payload spliced into a
// worker, and which. It has no side effects (but the worker's
// SpliceHead, which has none either).
func (rd *reader) planSink(p []byte, n int) (sinkPlan, bool) {
	var plan sinkPlan
	m, headLen, payload, ok := rd.decodeHead(p, n)
	if !ok {
		return plan, false
	}
	res, ok := rd.c.t.node.Resolve(m.Onward)
	if !ok || res.Worker == nil {
		return plan, false
	}
	sink, ok := res.Worker.(node.SpliceSink)
	if !ok {
		return plan, false
	}
	skip, ok := sink.SpliceHead(res.Onward, p[headLen:], payload)
	if !ok || skip < 0 || skip > len(p)-headLen || skip >= payload {
		return plan, false
	}
	plan.sink, plan.res, plan.headLen, plan.dataStart = sink, res, headLen, headLen+skip
	return plan, true
}

// sinkSource is the node.SpliceSource a worker is given: the data bytes
// of one frame, at the head of a pipe.
type sinkSource struct {
	p     *pipe
	left  int   // data bytes left in the pipe
	moved int   // moved by the last SpliceTo
	err   error // a failed read of the pipe: the bytes after it are lost
	outFn func(uintptr) bool
}

// Len returns the data bytes left.
func (s *sinkSource) Len() int { return s.left }

// Read reads data bytes from the pipe.
func (s *sinkSource) Read(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	b, err := readPipe(s.p, b[:min(len(b), s.left)])
	if err != nil {
		s.err = err
		return 0, err
	}
	s.left -= len(b)
	return len(b), nil
}

// SpliceTo moves what the socket behind rc takes at once from the pipe.
func (s *sinkSource) SpliceTo(rc syscall.RawConn) int {
	s.moved = 0
	if s.left == 0 || s.err != nil {
		return 0
	}
	rc.Write(s.outFn) // an error (a closed socket) moved nothing
	return s.moved
}

// spliceOut is SpliceTo's callback: it never waits.
func (s *sinkSource) spliceOut(fd uintptr) bool {
	for s.left > 0 {
		m, err := syscall.Splice(s.p.r, nil, int(fd), nil, s.left, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil, m <= 0:
			// Full (EAGAIN), or a socket that takes no spliced pages, or
			// one that failed: what is left is read into memory, and the
			// worker's writer meets the error, if any, again.
			return true
		}
		s.left -= int(m)
		s.p.n -= int(m)
		s.moved += int(m)
	}
	return true
}

// spliceSink tries to splice the payload of the large partial frame of n
// bytes at the head of the read buffer into the worker it is for (see
// above). It reports whether it did; if it did not but has read part of
// the payload (into a pipe), it returns the frame's body for the usual
// path. An error closes the source connection, as a read error would.
func (rd *reader) spliceSink(n int) (bool, []byte, error) {
	c := rd.c
	t := c.t
	if c.rc == nil {
		return false, nil, nil
	}
	buffered := rd.buf[rd.r+FrameHeaderSize : rd.w]
	if n-len(buffered) < spliceMinUnread {
		return false, nil, nil
	}
	plan, ok := rd.planSink(buffered, n)
	if !ok {
		return false, nil, nil
	}
	// What this reader deferred goes first, and nothing of it waits while
	// the payload comes.
	rd.flushPending()
	p := getPipe()
	if p == nil {
		return false, nil, nil
	}
	cs := rd.cut()
	// The pipe gets the data bytes read with the head (copied in), then
	// the rest of the frame from the socket.
	cs.pre = 0
	if pre := buffered[plan.dataStart:]; len(pre) > 0 {
		cs.iov[0] = syscall.Iovec{Base: &pre[0]}
		cs.iov[0].SetLen(len(pre))
		k, err := writePipe(p.w, cs.iov[:1])
		cs.iov = [2]syscall.Iovec{}
		if k > 0 {
			p.n += k
		}
		if err != nil || k < len(pre) {
			discardPipe(p)
			return false, nil, nil
		}
		cs.pre = k
	}
	cs.p, cs.want, cs.moved = p, n-len(buffered), 0
	if err := rd.fillPipe(); err != nil {
		discardPipe(p)
		return false, nil, err
	}
	cs.extra = max(cs.moved-cs.want, 0)
	if cs.moved < cs.want {
		// The pipe is full, the peer closed, or the socket failed: the
		// usual path, with what the pipe holds.
		return rd.uncut(n, p)
	}
	// The route is judged again now that the frame is whole, as the usual
	// path judges it: a worker stopped, or a name moved, before the
	// frame's last byte came must not take it.
	again, ok := rd.planSink(buffered, n)
	if !ok || again.sink != plan.sink || again.dataStart != plan.dataStart {
		return rd.uncut(n, p)
	}
	src := &cs.src
	if src.outFn == nil {
		src.outFn = src.spliceOut
	}
	data := n - plan.dataStart
	src.p, src.left, src.err = p, data, nil
	took := plan.sink.SpliceMessage(again.res.Onward, buffered[plan.headLen:plan.dataStart], src)
	src.p = nil
	if !took {
		if src.left != data || src.err != nil {
			// The worker broke its word: the frame cannot be delivered
			// whole, and the pipe's contents are uncertain.
			discardPipe(p)
			return false, nil, fmt.Errorf("tcp: a worker declined a spliced message after taking %d of its bytes", data-src.left)
		}
		return rd.uncut(n, p)
	}
	t.node.Commit(&again.res)
	t.stats.spliced.Add(1)
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(n + FrameHeaderSize))
	rd.r, rd.w = 0, 0
	rd.frameStart = time.Time{}
	if src.err != nil {
		// The worker has failed its stream; the next frame's first bytes
		// may be lost with the pipe: the connection must close.
		discardPipe(p)
		return true, nil, src.err
	}
	if src.left > 0 {
		// Bytes the worker did not take (it should have): dropped.
		if err := dropPipe(p, src.left); err != nil {
			return true, nil, err
		}
	}
	return true, nil, rd.takeExtra(p)
}
