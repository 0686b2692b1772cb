package tcp_test

import (
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestCutThroughAfterWriteTimeout: a destination whose writer goroutine
// once wrote with a deadline (a backlog larger than its socket takes) still
// receives cut-through frames after that deadline has passed. The
// non-blocking splice into it is not bounded by the old deadline, which
// would otherwise fail it and close the destination.
func TestCutThroughAfterWriteTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, WriteTimeout: timeout, SendQueueBytes: 64 << 20, SendQueueSize: 4096})
	recv := r.dialTarget(t)
	src := r.dial(t)
	// 8 MB for a destination that reads nothing yet: its socket fills, and
	// a writer goroutine writes the rest with a deadline once it reads.
	const backlog = 140
	var stream []byte
	for seq := range backlog {
		stream = append(stream, seqFrame(t, 0, seq, 60000)...)
	}
	go src.Write(stream)
	waitFor(t, "the backlog to reach the relay", func() bool { return r.tr.Stats().FramesIn == backlog })
	for want := range backlog {
		if _, seq := checkSeq(t, readOne(t, recv)); seq != want {
			t.Fatalf("frame %d, want %d", seq, want)
		}
	}
	time.Sleep(3 * timeout) // the deadline itself is what is tested
	before := r.tr.Stats().CutThrough
	// The first write to the destination after the deadline is a
	// cut-through: the head arrives first, and the reader takes a pipe for
	// the payload still to come.
	f := seqFrame(t, 0, backlog, 60000)
	if _, err := src.Write(f[:1000]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reader to take a pipe", func() bool { return tcp.PipesInUse() > 0 })
	if _, err := src.Write(f[1000:]); err != nil {
		t.Fatal(err)
	}
	if _, got := checkSeq(t, readOne(t, recv)); got != backlog {
		t.Fatalf("frame %d, want %d", got, backlog)
	}
	if r.tr.Stats().CutThrough == before {
		t.Fatal("no frame was cut through after the backlog")
	}
	if n := len(r.tr.Connections()); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}
