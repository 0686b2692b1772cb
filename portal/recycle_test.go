package portal

import (
	"runtime"
	"testing"
)

// TestRecycler: a buffer is reused only once the peer's limit is past its
// end plus the peer's window, never while the window is unknown, and in
// the order sent.
func TestRecycler(t *testing.T) {
	var r recycler
	a, b := new(readBuf), new(readBuf)
	r.sent(a, 1000)
	r.sent(b, 2000)
	if got := r.get(1<<40, 0); got == a || got == b {
		t.Fatal("reused with the peer's window unknown")
	}
	if got := r.get(1000+500-1, 500); got == a || got == b {
		t.Fatal("reused before the peer has written its bytes")
	}
	if got := r.get(1000+500, 500); got != a {
		t.Fatal("the first buffer was not reused once proven written")
	}
	if got := r.get(1000+500, 500); got == b {
		t.Fatal("the second buffer reused before proven written")
	}
	if got := r.get(2000+500, 500); got != b {
		t.Fatal("the second buffer was not reused once proven written")
	}
	if len(r.bufs) != 0 {
		t.Fatalf("%d buffers left", len(r.bufs))
	}
	for i := range maxRecycle + 10 {
		r.sent(new(readBuf), uint64(i))
	}
	if len(r.bufs) != maxRecycle || r.bufs[0].end != 10 {
		t.Fatalf("kept %d buffers from offset %d; want %d from 10", len(r.bufs), r.bufs[0].end, maxRecycle)
	}
	// Held weakly: once collected, a proven buffer is replaced by a new one.
	r = recycler{}
	r.sent(new(readBuf), 1)
	runtime.GC()
	if got := r.get(1<<20, 1); got == nil {
		t.Fatal("no buffer")
	}
}
