package node

import (
	"io"
	"syscall"

	"github.com/ockamhub/ockamhub/routing"
)

// SpliceSink is implemented by an inline worker (WorkerConfig.Inline) that
// writes the bulk of some messages' payloads, as they are, to a socket of
// its own (a TCP portal writes the peer's stream bytes to its local
// connection). A transport that has read the head of a large message for
// such a worker, and not yet its payload, may then move the payload's
// bytes kernel to kernel (on Linux: splice(2) from its socket into a pipe,
// and from the pipe into the worker's socket) instead of reading them into
// memory and handing them to HandleMessage. Nothing changes for the
// worker's peer: the message is the same message, handled once, in order
// with the others of its connection.
//
// The protocol is two steps: SpliceHead, which has no side effects, before
// the transport reads the payload; SpliceMessage once the whole payload has
// arrived, which handles the message, or declines, and then the transport
// delivers it as usual (HandleMessage). A transport calls them from the
// goroutine that would have delivered the message, in its order.
type SpliceSink interface {
	Worker
	// SpliceHead reports whether a message for the worker with the onward
	// route onward (its head is the worker's address) and a payload of
	// size bytes, which starts with head (some or all of the payload's
	// first bytes, as many as the transport has read), could be taken by
	// SpliceMessage now, and if so how many of the payload's first bytes
	// (skip ≤ len(head)) are the worker's own header: the rest, the
	// size-skip bytes that follow, are to be written as they are. It must
	// have no side effects, must not keep head, and must not block.
	SpliceHead(onward routing.Route, head []byte, size int) (skip int, ok bool)
	// SpliceMessage handles a message for which SpliceHead said yes, now
	// that all of its payload has arrived: head is the payload's first
	// skip bytes (skip as SpliceHead said for the same message; the
	// worker checks them again), and src holds the bytes that follow, all
	// of them. It reports true when it has handled the message, having
	// taken every byte of src (written to its socket with SpliceTo, or
	// read with Read), and false, having taken none and changed nothing,
	// when the transport must deliver the message the usual way. It must
	// not block: it writes with SpliceTo, which never waits, and reads
	// the rest, which is there, into memory of its own.
	SpliceMessage(onward routing.Route, head []byte, src SpliceSource) bool
}

// SpliceSource holds the payload bytes of a message given to
// SpliceSink.SpliceMessage, outside user space (in a pipe, on Linux). It
// is valid only until SpliceMessage returns. Read reads the bytes that
// are left into memory (io.EOF once none is).
type SpliceSource interface {
	io.Reader
	// Len returns the bytes left.
	Len() int
	// SpliceTo moves as many of the bytes left as the socket behind rc
	// takes at once into it, without waiting, and returns how many it
	// moved (perhaps 0: a full socket). An error is not returned: the
	// socket meets it again at its next write.
	SpliceTo(rc syscall.RawConn) int
}
