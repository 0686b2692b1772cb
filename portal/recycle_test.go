package portal

import (
	"runtime"
	"testing"
	"weak"
)

// TestRecycler: a buffer is reused only once the peer's limit is past its
// end plus the peer's window, never while the window is unknown, and in
// the order sent.
func TestRecycler(t *testing.T) {
	var r recycler
	a, b := new(readBuf), new(readBuf)
	r.sent(a, 1000)
	r.sent(b, 2000)
	if got := r.get(1<<40, 0, 1<<40); got == a || got == b {
		t.Fatal("reused with the peer's window unknown")
	}
	if got := r.get(1000+500-1, 500, 1000+500-1); got == a || got == b {
		t.Fatal("reused before the peer has written its bytes")
	}
	if got := r.get(1000+500, 500, 1000+500); got != a {
		t.Fatal("the first buffer was not reused once proven written")
	}
	if got := r.get(1000+500, 500, 1000+500); got == b {
		t.Fatal("the second buffer reused before proven written")
	}
	if got := r.get(2000+500, 500, 2000+500); got != b {
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
	// Held strongly while streaming, weakly once relaxed: once collected, a
	// proven buffer is replaced by a new one.
	r = recycler{}
	b = new(readBuf)
	w := weak.Make(b)
	r.sent(b, 1)
	b = nil
	runtime.GC()
	if w.Value() == nil {
		t.Fatal("a buffer in flight was collected before the peer proved it written")
	}
	r.relax()
	runtime.GC()
	if w.Value() != nil {
		t.Fatal("a relaxed buffer was not collected")
	}
	if got := r.get(1<<20, 1, 1<<20); got == nil {
		t.Fatal("no buffer")
	}
	// A buffer taken for reuse leaves no strong reference behind.
	r = recycler{}
	for i := range 3 {
		r.sent(new(readBuf), uint64(i+1))
	}
	r.get(1+1, 1, 1+1)
	if len(r.bufs) != 2 || cap(r.bufs) < 3 || r.bufs[:3][2].b != nil {
		t.Fatal("strong references left past the remembered buffers")
	}
}

// TestRecyclerWindowOverflow: a peer's window near 2^64 (its "no limit")
// proves nothing written: end+window wrapped below the limit, and every
// buffer was reused at once.
func TestRecyclerWindowOverflow(t *testing.T) {
	var r recycler
	a := new(readBuf)
	r.sent(a, 60<<10)
	for _, w := range []uint64{^uint64(0), ^uint64(0) - 1000} {
		if got := r.get(^uint64(0), w, ^uint64(0)); got == a {
			t.Fatalf("window %d: reused before the peer has written its bytes", w)
		}
	}
	if got := r.get(1<<20, 2<<20, 1<<20); got == a {
		t.Fatal("reused with a limit below the window")
	}
}

// TestRecyclerDistrust: a limit that claims more bytes written than were
// sent (limit-window > sent) makes the peer's Credits worthless: no buffer
// is reused from then on, even under a limit that would otherwise prove
// it written, and the remembered ones are let go.
func TestRecyclerDistrust(t *testing.T) {
	var r recycler
	a, b := new(readBuf), new(readBuf)
	r.sent(a, 1000)
	if got := r.get(1000+500, 500, 1000); got != a {
		t.Fatal("the first buffer was not reused once proven written")
	}
	r.sent(b, 2000)
	if got := r.get(1<<40, 500, 2000); got == b {
		t.Fatal("reused under a limit past what was ever sent")
	}
	if len(r.bufs) != 0 {
		t.Fatalf("%d buffers remembered after the peer lied", len(r.bufs))
	}
	r.sent(a, 3000)
	if got := r.get(3000+500, 500, 1<<41); got == a {
		t.Fatal("reused after the peer lied")
	}
}

// TestRecyclerWritten: the bytes the peer says it wrote
// (AppendCreditWritten) prove its buffers written however little its
// limit grants beyond them (a window shrunk by Options.SharedWindow), the
// newest proven buffer is reused first, and a peer that says it wrote
// more than was sent is not believed again.
func TestRecyclerWritten(t *testing.T) {
	var r recycler
	a, b, c := new(readBuf), new(readBuf), new(readBuf)
	r.sent(a, 1000)
	r.sent(b, 2000)
	r.sent(c, 3000)
	// Limit 2100 with a window of 2000 proves 100 bytes by itself.
	if got := r.getWritten(2100, 2000, 999, 3000); got == a || got == b || got == c {
		t.Fatal("reused before the peer said it had written the bytes")
	}
	if got := r.getWritten(2100, 2000, 2000, 3000); got != b {
		t.Fatal("the newest buffer proven written was not the one reused")
	}
	if got := r.getWritten(2100, 2000, 2000, 3000); got != a {
		t.Fatal("the older buffer proven written was not kept for the next read")
	}
	if got := r.getWritten(2100, 2000, 2000, 3000); got == c {
		t.Fatal("reused a buffer not proven written")
	}
	if got := r.getWritten(2100, 2000, 3001, 3000); got == c {
		t.Fatal("reused when the peer claimed more written than was sent")
	}
	if !r.distrust || len(r.bufs) != 0 || len(r.free) != 0 {
		t.Fatalf("distrust %v, %d buffers, %d free remembered after the peer lied", r.distrust, len(r.bufs), len(r.free))
	}
}
