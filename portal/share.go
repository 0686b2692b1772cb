package portal

import (
	"sync"
	"time"
)

// shareEpoch is the time over which a portal that wrote bytes to its local
// socket counts as busy for its inlet's or outlet's shared window (see
// streamShare): a portal counts in the epoch it wrote in and the next.
const shareEpoch = 100 * time.Millisecond

// streamShare counts the busy portals of one inlet or outlet, so that they
// bound the credit they grant their peers together (Options.SharedWindow):
// the portals of an inlet share the route to their outlet (one TCP
// connection, one secure channel), and 16 streams each granting a 2 MiB window held 32 MiB in
// flight on it, in socket buffers and queues that no cache holds: every
// copy of a byte cost more (BenchmarkStreams: 16 streams used about 40 %
// more CPU per byte than one). While more portals are busy than the
// shared window holds windows, each grants its part of it, never less
// than minWindow; one busy portal alone grants its whole window.
//
// The same count of the portals that send bounds what each sends past
// what its peer has proven written (pconn.sendCap).
//
// Only the grants shrink: the window a portal announces first (its first
// Credit, its Pong) stays Options.Window, which its peer's recycler takes
// as the most this side may grant ahead of what it wrote; a smaller grant
// only makes that bound looser, never wrong.
type streamShare struct {
	mu    sync.Mutex
	epoch int64 // the current epoch's number (time / shareEpoch)
	cur   int   // portals counted (wrote, or sent) in epoch
	prev  int   // portals counted in epoch-1
}

// busy counts a portal that wrote at now, whose last counted epoch is
// *last (updated), and returns the portals busy now, itself included.
func (s *streamShare) busy(now time.Time, last *int64) int {
	e := now.UnixNano() / int64(shareEpoch)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e == s.epoch:
	case e == s.epoch+1:
		s.epoch, s.prev, s.cur = e, s.cur, 0
	case e > s.epoch:
		s.epoch, s.prev, s.cur = e, 0, 0
	default:
		e = s.epoch // a clock read before another portal's: count it now
	}
	if *last != e {
		*last = e
		s.cur++
	}
	return max(s.cur, s.prev, 1)
}

// sharedWindow returns the window a portal grants while busy portals
// share shared bytes: its part, between minWindow and window.
func sharedWindow(window, shared, busy int) int {
	if shared <= 0 || busy <= 1 {
		return window
	}
	w := shared / busy
	return max(min(w, window), min(minWindow, window))
}

// minWindow is the least window a portal grants while it shares
// (sharedWindow): 256 KiB windows cost one stream a third of its speed
// (docs/benchmarks.md), and with many busy streams the sender then waits
// for credit between grants.
const minWindow = 512 << 10
