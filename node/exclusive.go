package node

import "context"

type exclusivePayloadsKey struct{}

// WithExclusivePayloads returns a copy of ctx that says the messages routed
// with it have payloads in memory of their own: nothing else reads or
// writes it, before or after. A transport's reading goroutine marks its
// context so when every frame it delivers has a newly allocated body that
// it never reuses (the TCP transport without Config.ReuseBodies).
//
// An inline worker given a message with such a context may then modify the
// payload in place, for example decrypt it where it lies, as long as it
// delivers the message (or what it makes of it) to one place at most. An
// inline worker that delivers one message to several places, or keeps its
// payload while it forwards it, must not pass on a context that says this.
func WithExclusivePayloads(ctx context.Context) context.Context {
	return context.WithValue(ctx, exclusivePayloadsKey{}, true)
}

// ExclusivePayload reports whether ctx is marked by WithExclusivePayloads:
// an inline worker given a message with ctx may modify its payload in
// place. It is false for every other context, including the contexts of
// workers that run in goroutines of their own.
func ExclusivePayload(ctx context.Context) bool {
	v, _ := ctx.Value(exclusivePayloadsKey{}).(bool)
	return v
}
