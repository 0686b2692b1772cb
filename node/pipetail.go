package node

import (
	"context"
	"errors"

	"github.com/ockamhub/ockamhub/routing"
)

// ErrNoPipeTail is returned by RoutePipeTail when the next hop's transport
// cannot write a payload whose end lies in a pipe.
var ErrNoPipeTail = errors.New("node: the next hop cannot take a payload's tail from a pipe")

// PipeTail is the end of a message's payload that lies in a pipe (Linux)
// rather than in memory: N bytes waiting at the pipe's read end, FD, for a
// transport to move into its socket with splice(2), so that they are never
// copied through user memory. The sender made and owns the pipe; the
// transport only reads it, and calls Done exactly once.
type PipeTail interface {
	// Pipe returns the pipe's read end and the bytes of the payload in it.
	Pipe() (fd, n int)
	// Done hands the pipe back. written: every one of the n bytes was
	// moved into the transport's socket (the pipe is empty); otherwise the
	// message was dropped (a closed connection, an error) and the pipe may
	// hold any part of them. The transport does not touch the pipe again.
	Done(written bool)
}

// PipeTailTransport is a Transport that can send a message whose payload
// ends with a PipeTail (RoutePipeTail).
type PipeTailTransport interface {
	Transport
	// CanPipeTail reports whether a message for hop (an address of the
	// transport's type) may carry a PipeTail now: a false answer costs the
	// sender nothing, a true one may be outdated by the time it sends.
	CanPipeTail(hop routing.Address) bool
	// RoutePipeTail is RouteMessage for a message whose payload is
	// m.Payload followed by the n bytes of tail. The frame on the wire is
	// the one RouteMessage would write for the whole payload. It calls
	// tail.Done exactly once, whatever it returns.
	RoutePipeTail(ctx context.Context, m routing.TransportMessage, tail PipeTail) error
}

// CanPipeTail reports whether a message whose onward route starts with hop
// goes straight to a transport that takes PipeTails: no local worker (a
// secure channel) sees it on the way.
func (n *Node) CanPipeTail(hop routing.Address) bool {
	if hop.Type == routing.Local {
		return false
	}
	t, ok := n.transportMap()[hop.Type].(PipeTailTransport)
	return ok && t.CanPipeTail(hop)
}

// RoutePipeTail routes m, whose payload ends with the bytes of tail, to
// the transport of its first hop (see PipeTailTransport). It fails with
// ErrNoPipeTail when that hop is local or its transport cannot take tails.
// It calls tail.Done exactly once, whatever it returns.
func (n *Node) RoutePipeTail(ctx context.Context, m routing.TransportMessage, tail PipeTail) error {
	ctx, _ = unmarkRoom(ctx)
	next, ok := m.Onward.Next()
	if !ok || next.Type == routing.Local {
		tail.Done(false)
		return ErrNoPipeTail
	}
	if n.isClosed.Load() {
		tail.Done(false)
		return ErrClosed
	}
	t, ok := n.transportMap()[next.Type].(PipeTailTransport)
	if !ok {
		tail.Done(false)
		return &RouteError{Addr: next, Err: ErrNoPipeTail}
	}
	n.routed.Add(1)
	return t.RoutePipeTail(ctx, m, tail)
}
