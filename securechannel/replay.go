package securechannel

// Beyond 2021: the Rust receiver of April–June 2021 accepted any nonce, so a
// data message captured anywhere on its route (for example at the hub) could
// be delivered again, and again. The sender's counter only ever increases, so
// a receiver can reject repeats with a sliding window, as WireGuard and IPsec
// do; a genuine peer never notices.

const (
	replayWordBits = 64
	replayWords    = 16 // a ring of 1024 bits
)

// ReplayWindow is how far behind the newest accepted counter a data message
// may arrive, reordered, and still be accepted (once). One ring word is kept
// for the newest counter's block, so the window is (16-1)×64 = 960 counters.
// Over an ordered transport such as TCP, messages arrive in order and the
// window only matters for duplicates.
const ReplayWindow = (replayWords - 1) * replayWordBits

// replayWindow remembers which data-message counters have been accepted,
// within ReplayWindow of the newest. The zero value has accepted nothing. It
// is not safe for concurrent use; a channel end's worker goroutine owns it.
type replayWindow struct {
	next uint32              // newest accepted counter + 1; 0 before the first
	ring [replayWords]uint64 // bit c%64 of word (c/64)%replayWords is counter c
}

// accept reports whether counter c is new, and records it if so. Call it
// only for messages that authenticated, so that forged counters cannot move
// the window.
func (w *replayWindow) accept(c uint16) bool {
	n := uint32(c)
	switch {
	case w.next == 0:
		// First message: the ring is all zero.
	case n >= w.next:
		// Newer than anything so far: slide forward, clearing the words of
		// the blocks that the window now enters.
		oldTop, newTop := (w.next-1)/replayWordBits, n/replayWordBits
		if newTop-oldTop >= replayWords {
			w.ring = [replayWords]uint64{}
		} else {
			for b := oldTop + 1; b <= newTop; b++ {
				w.ring[b%replayWords] = 0
			}
		}
	case w.next-1-n > ReplayWindow:
		return false // too old to tell: refuse
	}
	word, bit := &w.ring[(n/replayWordBits)%replayWords], uint64(1)<<(n%replayWordBits)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	if n >= w.next {
		w.next = n + 1
	}
	return true
}
