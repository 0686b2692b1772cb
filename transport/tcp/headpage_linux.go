//go:build linux

package tcp

import (
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A frame cut through starts with its outgoing head, which a stream of
// frames with the same routes and payload length repeats byte for byte.
// Written into the pipe (writev), each copy costs the kernel a new page,
// charged to the memory cgroup, and a copy; vmsplice(2) instead lends the
// pipe the page where the head lies, and splicing the pipe into the
// destination lends it to the socket, which refers to it until the peer
// has read it: the bytes must not change, for as long as the kernel may
// refer to them, which the process cannot know.
//
// So heads are lent only from head chunks: memory mapped apart from Go's
// heap, handed out by a bump allocator, whose bytes are written once,
// before they are first lent, and never again. A chunk is unmapped once
// it is full and no reader holds a slot in it; the kernel keeps the pages
// that pipes and sockets still refer to (unmapped, nothing can write them)
// and frees them when they are done. Readers hold one slot at a time,
// their last head, and give it back when they go idle or close, so a
// hub's chunks hold about one head per reader sending large frames. A
// reader whose slot lies in a chunk that is no longer the current one
// moves to the current one with its next frame, so that a full chunk is
// not kept mapped by a few readers.
const maxLentHead = 256 // longer heads are written into the pipe

// headChunkSize is the size of a head chunk (a variable for tests, read
// and set under headChunks.mu).
var headChunkSize = 64 << 10

// maxRetiredHeadChunks bounds the full chunks kept mapped because readers
// still hold slots in them. Past it no new chunk is mapped (new heads are
// written into the pipe, the current chunk's slots are still lent) until
// one of them is unmapped: a peer that holds its reader busy (a frame
// always partly read) after its last head was lent keeps that head's
// chunk mapped, and many such peers, with heads changing to fill chunk
// after chunk, would otherwise pin a chunk each (a hub's memory, and its
// count of mappings, which vm.max_map_count bounds for the whole process,
// Go's heap included). A variable for tests.
var maxRetiredHeadChunks = 64

// headsLent and headChunksMapped count the heads lent to pipes and the
// chunks mapped (for tests).
var headsLent, headChunksMapped atomic.Uint64

type headChunk struct {
	mem  []byte
	used int // bytes handed out
	refs int // slots held
}

var headChunks struct {
	mu  sync.Mutex
	cur atomic.Pointer[headChunk] // stored under mu
	// retired counts the chunks no longer current and still mapped
	retired int
}

// headSlot is a head lent from a chunk: b is never modified. A parked
// slot (a reader's while it waits) holds no reference: its chunk may be
// unmapped, and b is not read unless ch is still the current chunk, which
// is never unmapped (checked under headChunks.mu, as the slot is taken
// again).
type headSlot struct {
	ch     *headChunk
	b      []byte
	parked bool
}

// takeHeadSlot copies h into a new slot; ok is false when no chunk could
// be mapped (the head is then written into the pipe).
func takeHeadSlot(h []byte) (headSlot, bool) {
	if len(h) == 0 || len(h) > maxLentHead {
		return headSlot{}, false
	}
	headChunks.mu.Lock()
	defer headChunks.mu.Unlock()
	ch := headChunks.cur.Load()
	if ch != nil && len(ch.mem) != headChunkSize {
		ch.used = len(ch.mem) // a test changed the size: this one is done
	}
	if ch == nil || ch.used+len(h) > len(ch.mem) {
		if ch != nil && ch.refs > 0 && headChunks.retired >= maxRetiredHeadChunks {
			return headSlot{}, false
		}
		mem, err := syscall.Mmap(-1, 0, headChunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
		if err != nil {
			return headSlot{}, false
		}
		if ch != nil {
			if ch.refs == 0 {
				syscall.Munmap(ch.mem)
			} else {
				headChunks.retired++
			}
		}
		headChunksMapped.Add(1)
		ch = &headChunk{mem: mem}
		headChunks.cur.Store(ch)
	}
	b := ch.mem[ch.used : ch.used+len(h) : ch.used+len(h)]
	copy(b, h)
	ch.used += len(h)
	ch.refs++
	return headSlot{ch: ch, b: b}, true
}

// release gives the slot back; the last slot of a full chunk unmaps it.
func (s *headSlot) release() {
	ch := s.ch
	if ch == nil {
		return
	}
	parked := s.parked
	*s = headSlot{}
	if parked {
		return
	}
	headChunks.mu.Lock()
	ch.refs--
	if ch.refs == 0 && ch != headChunks.cur.Load() {
		syscall.Munmap(ch.mem)
		headChunks.retired--
	}
	headChunks.mu.Unlock()
}

// park gives the slot's reference back while its reader waits: a slot in
// the current chunk is kept, to be taken again by lends if the chunk is
// still current then (an idle reader pins no chunk, and a stream whose
// reader waits between its frames still has its head lent); any other is
// released.
func (s *headSlot) park() {
	ch := s.ch
	if ch == nil || s.parked {
		return
	}
	headChunks.mu.Lock()
	if ch != headChunks.cur.Load() {
		headChunks.mu.Unlock()
		s.release()
		return
	}
	ch.refs-- // current: not unmapped while it stays so
	s.parked = true
	headChunks.mu.Unlock()
}

// lends reports whether s holds h, in the current chunk; a parked slot is
// taken again first (or dropped, if its chunk is no longer current).
func (s *headSlot) lends(h []byte) bool {
	if s.ch == nil {
		return false
	}
	if s.parked {
		headChunks.mu.Lock()
		if s.ch != headChunks.cur.Load() {
			headChunks.mu.Unlock()
			*s = headSlot{}
			return false
		}
		s.ch.refs++
		s.parked = false
		headChunks.mu.Unlock()
	}
	return s.ch == headChunks.cur.Load() && string(s.b) == string(h)
}

// vmsplicePipe lends b to the pipe fd (vmsplice(2) without SPLICE_F_GIFT:
// the pipe refers to b's page, which must never change: a head slot).
func vmsplicePipe(fd int, b []byte) (int, error) {
	iov := syscall.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	for {
		r, _, e := syscall.Syscall6(syscall.SYS_VMSPLICE, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, spliceNonblock, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}
