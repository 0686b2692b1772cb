//go:build linux

package tcp_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of the next head after a frame cut through: taken from the socket
// as long as the last head was (headpage_linux.go, cut_linux.go), and
// lent to the pipe when it repeats.

// fwdRetFrame is a frame for the relay's forwarder whose return route is
// ret, with a payload of size bytes filled with fill.
func fwdRetFrame(t testing.TB, ret routing.Route, fill byte, size int) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd"), routing.LocalAddress("ignored")}, Return: ret, Payload: bytes.Repeat([]byte{fill}, size)}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// headsRun sends, while the source's reader is held, a frame of 30,000
// bytes and five of 40,000 whose heads grow longer and shorter again, and
// returns what the target received and the frames cut through. The first
// two do not fit in a read buffer together: the second of them, at the
// latest, is not whole when the reader comes to it, and is cut through.
func headsRun(t *testing.T, cfg tcp.Config) ([]byte, uint64) {
	t.Helper()
	r, open := newGatedRelay(t, cfg)
	recv := r.dialTarget(t)
	src := r.dial(t)
	short := routing.Route{routing.LocalAddress("s")}
	long := routing.Route{routing.LocalAddress("s"), routing.TCPAddress("10.0.0.1:4000"), routing.LocalAddress("a much longer return route than the last")}
	stream := gateFrame(t)
	stream = append(stream, fwdRetFrame(t, short, 0xee, 30000)...)
	for i, ret := range []routing.Route{short, long, long, short, short} {
		stream = append(stream, fwdRetFrame(t, ret, byte(i), 40000)...)
	}
	sendHeld(t, src, stream)
	close(open)
	got := readTranscript(t, recv, 6)
	got = bytes.ReplaceAll(got, []byte(src.LocalAddr().String()), []byte("127.0.0.1:00000"))
	return got, r.tr.Stats().CutThrough
}

// TestCutThroughLongerHeadAfterCut: after a frame cut through, the reader
// takes from the socket as many bytes as that frame's head had; a next
// head that is longer is read in full and its frame cut through too (not
// copied by the usual path for want of its head), and so are the frames
// after it, with the usual path's bytes.
func TestCutThroughLongerHeadAfterCut(t *testing.T) {
	want, _ := headsRun(t, tcp.Config{ReuseBodies: true})
	got, cut := headsRun(t, tcp.Config{ReuseBodies: true, CutThrough: true})
	if !bytes.Equal(got, want) {
		t.Fatalf("the target received %d bytes that differ from the usual path's %d", len(got), len(want))
	}
	// The five frames of 40,000 bytes, and the first if it was not whole.
	if cut < 5 {
		t.Fatalf("%d of 6 frames cut through, want the last 5 at least", cut)
	}
}

// TestCutThroughLentHeadsIntact: heads lent to pipes are pages the kernel
// refers to until the destination has read them. A destination that reads
// nothing while frames with one head are cut through to it, whose source
// then closes (its slot given back), while another source's frames, each
// with a head of its own, go through many head chunks (each unmapped, and
// its addresses mapped again), receives every frame intact, each head
// what the first (written, not lent) was.
func TestCutThroughLentHeadsIntact(t *testing.T) {
	defer tcp.SetHeadChunkSize(4096)()
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	recv2, to2 := dialNamed(t, r, "r2")
	lent0, mapped0 := tcp.HeadsLent(), tcp.HeadChunksMapped()

	const n1 = 40
	src := r.dial(t)
	var stream []byte
	for seq := range n1 {
		stream = append(stream, seqFrame(t, 1, seq, 20000)...)
	}
	go src.Write(stream)
	waitFor(t, "the relay to read the first source's frames", func() bool { return r.tr.Stats().FramesIn >= n1 })
	src.Close()
	if tcp.HeadsLent() == lent0 {
		t.Fatal("no head was lent")
	}

	const n2 = 400
	src2 := r.dial(t)
	go func() {
		for i := range n2 {
			m := routing.TransportMessage{Version: 1, Onward: to2, Return: routing.Route{routing.LocalAddress(fmt.Sprintf("%08d", i))}, Payload: bytes.Repeat([]byte{byte(i)}, 17000)}
			f, err := tcp.AppendFrame(nil, &m, 0)
			if err != nil {
				return
			}
			if _, err := src2.Write(f); err != nil {
				return
			}
		}
	}()
	readTranscript(t, recv2, n2)
	if m := tcp.HeadChunksMapped() - mapped0; m < 3 {
		t.Fatalf("%d head chunks mapped, want several", m)
	}

	got := splitFrames(readTranscript(t, recv, n1))
	first := got[0]
	headLen := len(first) - 20000
	for i, f := range got {
		if _, seq := checkSeq(t, f); seq != i {
			t.Fatalf("frame %d, want %d", seq, i)
		}
		if !bytes.Equal(f[:headLen], first[:headLen]) {
			t.Fatalf("frame %d: head % x, want % x", i, f[:headLen], first[:headLen])
		}
	}
}

// dribbleRun sends frames of 17,000 to 40,000 bytes whose return routes
// (heads of 20 to 500 bytes) change, the first bytes of each head to its
// payload's third byte one write each, and returns what the target
// received and the frames cut through.
func dribbleRun(t *testing.T, cfg tcp.Config) ([]byte, uint64) {
	t.Helper()
	r, open := newGatedRelay(t, cfg)
	close(open)
	recv := r.dialTarget(t)
	src := r.dial(t)
	short := routing.Route{routing.LocalAddress("s")}
	long := routing.Route{routing.LocalAddress("s"), routing.TCPAddress("10.0.0.1:4000"), routing.LocalAddress("a much longer return route than the last")}
	var huge routing.Route
	for range 12 {
		huge = append(huge, routing.LocalAddress("a long address of forty bytes or so.."))
	}
	rets := []routing.Route{short, short, long, long, huge, huge, short, huge, long, short, short}
	sizes := []int{20000, 20000, 20001, 20000, 30000, 20000, 17000, 40000, 20000, 20002, 20000}
	var writes [][]byte
	writes = append(writes, gateFrame(t))
	for i, ret := range rets {
		f := fwdRetFrame(t, ret, byte(i), sizes[i])
		hl := len(f) - sizes[i]
		for j := range hl + 3 {
			writes = append(writes, f[j:j+1])
		}
		writes = append(writes, f[hl+3:])
	}
	go func() {
		for _, w := range writes {
			if _, err := src.Write(w); err != nil {
				return
			}
		}
	}()
	got := readTranscript(t, recv, len(rets))
	got = bytes.ReplaceAll(got, []byte(src.LocalAddr().String()), []byte("127.0.0.1:00000"))
	return got, r.tr.Stats().CutThrough
}

// TestCutThroughDribbledHeads: heads that come a byte at a time, longer
// and shorter than the last (beyond maxLentHead and cutPeek too), after
// frames cut through, give the target the usual path's bytes.
func TestCutThroughDribbledHeads(t *testing.T) {
	want, _ := dribbleRun(t, tcp.Config{ReuseBodies: true})
	for range 3 {
		got, cut := dribbleRun(t, tcp.Config{ReuseBodies: true, CutThrough: true})
		if !bytes.Equal(got, want) {
			t.Fatalf("the target received %d bytes that differ from the usual path's %d", len(got), len(want))
		}
		t.Logf("%d frames cut through", cut)
	}
}

// TestCutThroughPacedStreamLends: a source that sends its next frame only
// once the last has arrived (its reader waits, idle, between frames) has
// its repeated head lent, not written into a new slot each frame: the
// slot its reader parks while it waits is taken again (without it, under 10 of
// 200 lent, and a chunk of 4096 bytes mapped for every 80 frames or so).
func TestCutThroughPacedStreamLends(t *testing.T) {
	defer tcp.SetHeadChunkSize(4096)()
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	src := r.dial(t)
	lent0, cut0 := tcp.HeadsLent(), r.tr.Stats().CutThrough
	const frames = 200
	for seq := range frames {
		f := seqFrame(t, 1, seq, 40000)
		// The head and a little of the payload first: the frame is
		// not whole when the reader comes to it.
		if _, err := src.Write(f[:100]); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Write(f[100:]); err != nil {
			t.Fatal(err)
		}
		if _, got := checkSeq(t, readOne(t, recv)); got != seq {
			t.Fatalf("frame %d, want %d", got, seq)
		}
	}
	lent, cut := tcp.HeadsLent()-lent0, r.tr.Stats().CutThrough-cut0
	if cut < frames/4 || lent < cut/2 {
		t.Fatalf("%d of %d frames cut through, %d heads lent", cut, frames, lent)
	}
	t.Logf("%d of %d frames cut through, %d heads lent", cut, frames, lent)
}
