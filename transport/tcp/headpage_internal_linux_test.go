//go:build linux

package tcp

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// BenchmarkCutHead: putting a cut-through frame's outgoing head (48
// bytes) into its pipe, then splicing it into a TCP socket (as into a
// destination, whose peer reads it): "write" copies it into a new pipe page
// (writev), "lend" lends the page of its head slot (vmsplice).
func BenchmarkCutHead(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ac, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close()
	go io.Copy(io.Discard, ac)
	f, err := nc.(*net.TCPConn).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := int(f.Fd())
	head := make([]byte, 48)
	for i := range head {
		head[i] = byte(i)
	}
	for _, mode := range []string{"write", "lend"} {
		b.Run(mode, func(b *testing.B) {
			p := getPipe()
			if p == nil {
				b.Skip("no pipe")
			}
			defer discardPipe(p)
			slot, ok := takeHeadSlot(head)
			if !ok {
				b.Fatal("no head slot")
			}
			defer slot.release()
			iov := []syscall.Iovec{{Base: &head[0]}}
			iov[0].SetLen(len(head))
			b.ReportAllocs()
			for b.Loop() {
				var k int
				var err error
				if mode == "lend" {
					k, err = vmsplicePipe(p.w, slot.b)
				} else {
					k, err = writePipe(p.w, iov)
				}
				if err != nil || k != len(head) {
					b.Fatal(k, err)
				}
				if m, err := syscall.Splice(p.r, nil, out, nil, k, 0); err != nil || int(m) != k {
					b.Fatal(m, err)
				}
			}
		})
	}
}

// TestHeadChunksRetiredBounded: readers that each hold a slot in a chunk
// filled since (peers keeping their readers busy while their heads change)
// keep no more than maxRetiredHeadChunks chunks mapped; new heads are then
// not lent, and chunks are mapped again once the slots are given back.
func TestHeadChunksRetiredBounded(t *testing.T) {
	restore := SetHeadChunkSize(256) // one 200-byte head per chunk
	defer restore()
	headChunks.mu.Lock()
	oldMax := maxRetiredHeadChunks
	maxRetiredHeadChunks = 4
	headChunks.mu.Unlock()
	defer func() {
		headChunks.mu.Lock()
		maxRetiredHeadChunks = oldMax
		headChunks.mu.Unlock()
	}()
	head := make([]byte, 200)
	before := headChunksMapped.Load()
	var slots []headSlot
	defer func() {
		for i := range slots {
			slots[i].release()
		}
	}()
	for i := range 40 {
		head[0] = byte(i)
		if s, ok := takeHeadSlot(head); ok {
			if s.b[0] != byte(i) {
				t.Fatalf("slot %d holds %d", i, s.b[0])
			}
			slots = append(slots, s)
		}
	}
	// The chunk current before, the retired ones, the current one.
	if mapped := headChunksMapped.Load() - before; mapped > 4+1 {
		t.Fatalf("%d chunks mapped for 40 heads held, want at most %d", mapped, 4+1)
	}
	if len(slots) == 0 {
		t.Fatal("no head lent")
	}
	for i := range slots {
		slots[i].release()
	}
	slots = slots[:0]
	headChunks.mu.Lock()
	retired := headChunks.retired
	headChunks.mu.Unlock()
	if retired != 0 {
		t.Fatalf("%d chunks retired after every slot was given back", retired)
	}
	head[0] = 0xff
	s, ok := takeHeadSlot(head)
	if !ok {
		t.Fatal("no chunk mapped after the slots were given back")
	}
	slots = append(slots, s)
}

// TestHeadSlotPark: a parked slot holds no reference; it is lent again
// while its chunk is current, and dropped, its unmapped memory not read,
// once the chunk has been replaced.
func TestHeadSlotPark(t *testing.T) {
	restore := SetHeadChunkSize(256) // one 200-byte head per chunk
	defer restore()
	head := make([]byte, 200)
	head[0] = 1
	s, ok := takeHeadSlot(head)
	if !ok {
		t.Fatal("no head slot")
	}
	defer s.release()
	ch := s.ch
	s.park()
	headChunks.mu.Lock()
	refs := ch.refs
	headChunks.mu.Unlock()
	if refs != 0 || !s.parked {
		t.Fatalf("parked: refs %d, parked %v", refs, s.parked)
	}
	if !s.lends(head) || s.parked {
		t.Fatal("a parked slot in the current chunk not lent again")
	}
	s.park()
	// Another head maps a new chunk; the parked slot's, unreferenced, is
	// unmapped.
	head[0] = 2
	other, ok := takeHeadSlot(head)
	if !ok {
		t.Fatal("no head slot")
	}
	defer other.release()
	if headChunks.cur.Load() == ch {
		t.Fatal("the chunk was not replaced")
	}
	head[0] = 1
	if s.lends(head) || s.ch != nil {
		t.Fatal("a parked slot whose chunk was replaced was lent")
	}
}
