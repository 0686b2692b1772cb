package portal

import (
	"weak"

	"github.com/ockamhub/ockamhub/noise"
)

// readBuf is the memory of one read from the local socket: sealLead
// bytes of room, then room for the message header (headroom) and the
// largest chunk, then sealTail bytes of room. The reader gives all of it
// up with the message it sends (node.WithPayloadRoom), so that a secure
// channel seals the message where it lies, its framing and the inner
// routes in front, its tag behind, instead of copying it to a buffer of
// its own. The reader reads the buffer again only once the peer's Credit
// proves the bytes were written (recycler), which it never does for a
// peer that grants none. It is 61,987 bytes, 528 more than without the
// room: the same 16 pages (large allocations are whole pages).
type readBuf [sealLead + headroom + MaxChunk + sealTail]byte

const (
	// sealLead is the room in front of the message header: a secure
	// channel's data-message header (5 bytes) and the inner message's
	// version, routes beyond the channel and payload length, which fit
	// for routes of a few addresses (a longer route falls back to the
	// channel's copy).
	sealLead = 512
	// sealTail is the room behind the largest chunk: a secure channel's
	// AEAD tag.
	sealTail = noise.Overhead
)

// maxRecycle bounds the buffers a portal remembers for reuse.
const maxRecycle = 64

// recycler lets a portal's reader reuse the buffers of reads it sent to an
// extension peer once the peer has proven it is done with them, instead of
// allocating (and clearing, and collecting) 64 KiB per chunk. The
// transport, and a secure channel (which seals it where it lies: see
// readBuf), keep a payload until they have written it, and do not say
// when; the peer's Credit does: an ockamhub peer grants
// up to the bytes it has written to its own socket plus its window, so
// once the limit it grants is past a buffer's last stream offset plus that
// window, the buffer's bytes have crossed every hop and nothing on this
// side reads them again. A peer that claims more written than was sent
// to it (limit-window > sent) is not believed again (distrust); one that
// lies within that (claims all sent bytes written while the transport
// still holds some) gets later bytes of the same stream where earlier ones
// were: a corrupted stream, and through a secure channel, which sealed the
// earlier bytes in place, those later bytes on the wire to the next hop
// unencrypted (and failing the channel's authentication). Only bytes that
// go to that peer anyway, nothing another portal sends; but it makes this
// side's confidentiality towards the hops on the way depend on the peer's
// Credits (an ockamhub peer grants only for bytes it wrote). Used by the
// reader goroutine only.
//
// While the portal streams, the buffers in flight are held strongly: at
// most about a window's worth (the peer's credit bounds what is sent and
// not yet proven written), which the portal holds anyway until the
// transport has written them. Held weakly, they were collected before the
// Credit that frees them came back as soon as the collector ran more often
// than a window's round trip: with 16 streams on one connection, 32 MiB in
// flight, 97 % of the reads allocated a new buffer (BenchmarkStreams).
// When the reader is about to wait for its socket (relax), and when the
// portal ends, the buffers are held weakly: a portal that goes idle holds
// none for the collector.
type recycler struct {
	bufs []recycled // sent, not yet proven written, in the order sent
	free []recycled // proven written, the newest last
	// distrust: the peer granted a limit that claims more bytes written
	// than were ever sent to it (limit-window > sent). Its Credits prove
	// nothing then, and no buffer is reused again: a buffer reused too
	// early corrupts the stream, and through a secure channel, which seals
	// it in place, puts plaintext where the transport is about to write
	// ciphertext.
	distrust bool
}

// maxFree bounds the buffers proven written that a portal keeps for its
// next reads: a default window's worth (35 chunks of 60 KiB), which one
// stream cycles through when a Credit proves a quarter of it at once
// behind a burst; taken newest first, the rest lie unread.
const maxFree = 36

type recycled struct {
	b   *readBuf // while streaming; nil once relaxed
	p   weak.Pointer[readBuf]
	end uint64 // the stream offset after the buffer's bytes
}

// sent remembers b, whose bytes end at stream offset end.
func (r *recycler) sent(b *readBuf, end uint64) {
	if len(r.bufs) == maxRecycle {
		r.bufs = r.bufs[:copy(r.bufs, r.bufs[1:])] // append overwrites the last
	}
	r.bufs = append(r.bufs, recycled{b: b, p: weak.Make(b), end: end})
}

// get returns a buffer the peer is done with, given the limit it granted,
// its window (0: unknown, nothing is reused) and the stream bytes sent to
// it so far, or a new one.
func (r *recycler) get(limit, window, sent uint64) *readBuf {
	return r.getWritten(limit, window, 0, sent)
}

// getWritten is get, given also the most the peer said it had written in
// its Credits (AppendCreditWritten; 0: it never said): the bytes before
// it are proven written too, however little the peer's limit grants
// beyond them.
func (r *recycler) getWritten(limit, window, written, sent uint64) *readBuf {
	if !r.distrust && (written > sent || (window > 0 && limit >= window && limit-window > sent)) {
		r.distrust = true
		clear(r.bufs)
		r.bufs = nil
		clear(r.free)
		r.free = nil
	}
	if r.distrust {
		return new(readBuf)
	}
	i := 0
	var b *readBuf
	// end+window <= limit, without the overflow: a peer's window is any
	// uvarint, and one of 2^64-1 (a peer's "no limit") wrapped the sum
	// below every limit, reusing each buffer at once, while the transport
	// (or a secure channel, which seals in place) still held its bytes.
	proven := written
	if window > 0 && limit >= window {
		proven = max(proven, limit-window)
	}
	// The buffers proven written move to free, and the newest of them is
	// taken: reused oldest first, the buffers a burst allocated (a whole
	// window's worth, before the first Credit) stayed in the rotation
	// after the peer's grants had shrunk (Options.SharedWindow), and every
	// read went to memory no cache held.
	for ; i < len(r.bufs) && proven > 0 && r.bufs[i].end <= proven; i++ {
		if len(r.free) == maxFree {
			r.free = r.free[:copy(r.free, r.free[1:])]
		}
		r.free = append(r.free, r.bufs[i])
	}
	if i > 0 {
		n := copy(r.bufs, r.bufs[i:])
		clear(r.bufs[n:]) // the strong references shifted out
		r.bufs = r.bufs[:n]
	}
	for len(r.free) > 0 && b == nil {
		f := r.free[len(r.free)-1]
		r.free[len(r.free)-1] = recycled{}
		r.free = r.free[:len(r.free)-1]
		if b = f.b; b == nil {
			b = f.p.Value()
		}
	}
	if b == nil {
		b = new(readBuf)
	}
	return b
}

// relax holds the remembered buffers weakly only, for a reader that may
// wait for its socket for long.
func (r *recycler) relax() {
	for i := range r.bufs {
		r.bufs[i].b = nil
	}
	for i := range r.free {
		r.free[i].b = nil
	}
}
