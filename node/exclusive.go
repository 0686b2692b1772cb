package node

import "context"

// exclusiveCtx is a context marked by WithExclusivePayloads: the context it
// wraps, unchanged but for the mark, which only Route reads (a type
// assertion, not a lookup through the chain of values).
type exclusiveCtx struct{ context.Context }

// WithExclusivePayloads returns a copy of ctx that says the messages routed
// with it have payloads in memory of their own: nothing else reads or
// writes it, before or after. A transport's reading goroutine marks the
// context it routes what it read with when every frame it delivers has a
// newly allocated body that it never reuses (the TCP transport without
// Config.ReuseBodies).
//
// The mark applies to the message routed with ctx, not to the messages of
// the workers it reaches: Route hands a message routed with a marked
// context to an inline worker as Message.ExclusivePayload, and gives the
// worker ctx without the mark. So a worker that keeps a payload, or sends
// it to several places, never has it modified by a worker it passes it on
// to. The mark counts only on the outermost context: a context derived
// from a marked one is not marked.
func WithExclusivePayloads(ctx context.Context) context.Context {
	return &exclusiveCtx{ctx}
}

// unmarkExclusive returns ctx without the mark of WithExclusivePayloads,
// and whether it had it.
func unmarkExclusive(ctx context.Context) (context.Context, bool) {
	if x, ok := ctx.(*exclusiveCtx); ok {
		return x.Context, true
	}
	return ctx, false
}

// ExclusivePayload reports whether m's payload is the inline worker's
// alone: the transport that read it routed it straight to this worker with
// a context marked by WithExclusivePayloads. The worker may then modify
// the payload in place (decrypt it where it lies, for example), keep it,
// and deliver what it makes of it to one place at most. It is false for a
// message any worker sent or passed on, and for the messages of workers
// with a mailbox.
func (m *Message) ExclusivePayload() bool { return m.exclusive }
