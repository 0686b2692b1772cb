//go:build linux

package tcp_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// smallBuffers is a net.ListenConfig or net.Dialer Control that makes a
// socket's buffers small (the kernel doubles these), so that a
// destination that reads nothing stops taking bytes after a few hundred
// KiB, whatever the machine's autotuning limits. A listening socket's
// buffers are inherited by the sockets it accepts.
func smallBuffers(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = errors.Join(
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 32<<10),
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10))
	})
	return errors.Join(err, serr)
}

// TestCutThroughAfterWriteTimeout: a destination whose writer goroutine
// once wrote with a deadline (a backlog larger than its socket takes) still
// receives cut-through frames after that deadline has passed. The
// non-blocking splice into it is not bounded by the old deadline, which
// would otherwise fail it and close the destination.
//
// A write with a deadline that a reader does not drain in time fails, and
// rightly closes the destination: the deadline is a second, far longer than
// the test holds the writer (while a small backlog beyond two small socket
// buffers reaches the relay), so that a loaded machine does not fail it.
func TestCutThroughAfterWriteTimeout(t *testing.T) {
	const timeout = time.Second
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, WriteTimeout: timeout, SendQueueBytes: 64 << 20, SendQueueSize: 4096, Logger: testLogger()})
	// A second listener, whose connections have small socket buffers.
	lc := net.ListenConfig{Control: smallBuffers}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go r.tr.Serve(ln)
	d := net.Dialer{Control: smallBuffers}
	recv, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	r.target = routing.Route{routing.TCPAddress(recv.LocalAddr().String()), routing.LocalAddress("r0000000")}
	waitFor(t, "the relay to see the destination", func() bool { return slices.Contains(r.tr.Connections(), r.target[0]) })
	src := r.dial(t)
	// 1.2 MB for a destination that reads nothing yet: its socket buffers
	// (and the relay's to it) fill, and a writer goroutine writes the rest
	// with a deadline once it reads.
	const backlog = 20
	var stream []byte
	for seq := range backlog {
		stream = append(stream, seqFrame(t, 0, seq, 60000)...)
	}
	start := time.Now()
	go src.Write(stream)
	waitFor(t, "the backlog to reach the relay", func() bool { return r.tr.Stats().FramesIn == backlog })
	for want := range backlog {
		if _, seq := checkSeq(t, readOne(t, recv)); seq != want {
			t.Fatalf("frame %d, want %d", seq, want)
		}
	}
	// Every write with a deadline began before the last frame was read:
	// its deadline has passed a timeout after that.
	t.Logf("the backlog took %v (the writer's deadline is %v)", time.Since(start), timeout)
	time.Sleep(timeout + timeout/10) // the deadline itself is what is tested
	if r.tr.Stats().CutThrough == 0 {
		// The backlog's first frames, before the socket filled, are cut
		// through; a run with none is none the worse for what follows.
		t.Log("none of the backlog was cut through")
	}
	// The first write to the destination after the deadline is a
	// cut-through: the head arrives first, and the reader takes a pipe for
	// the payload still to come. (Or, if the writer goroutine has not yet
	// given up the right to write, the usual path: a non-blocking write,
	// which a passed deadline would fail as well. Then the next frame.)
	for seq := backlog; ; seq++ {
		before := r.tr.Stats().CutThrough
		f := seqFrame(t, 0, seq, 60000)
		if _, err := src.Write(f[:1000]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reader to take a pipe", func() bool { return tcp.PipesInUse() > 0 })
		if _, err := src.Write(f[1000:]); err != nil {
			t.Fatal(err)
		}
		if _, got := checkSeq(t, readOne(t, recv)); got != seq {
			t.Fatalf("frame %d, want %d", got, seq)
		}
		if n := len(r.tr.Connections()); n != 2 {
			t.Fatalf("%d connections, want 2", n)
		}
		if r.tr.Stats().CutThrough > before {
			return
		}
		if seq == backlog+20 {
			t.Fatal("no frame was cut through after the backlog")
		}
	}
}
