package node

import "context"

// roomCtx is a context marked by WithPayloadRoom: the context it wraps,
// and the memory the payload of the message routed with it lies in.
type roomCtx struct {
	context.Context
	buf []byte
	off int
}

// WithPayloadRoom returns a copy of ctx that says the payload of the
// message routed with it lies at buf[off:] and that its sender gives up
// buf: the bytes of the payload and the room around it, up to cap(buf).
// The worker (inline or with a mailbox) the message is routed to may
// then overwrite any of it (a secure channel seals the payload where it
// lies, its framing in the room in front and its tag in the room behind:
// Message.PayloadRoom). The sender must not read or write buf again until
// it knows that worker, and everything that worker handed the bytes to,
// are done with them (a portal learns it from its peer's Credit, which
// comes only after the bytes crossed every hop).
//
// Like WithExclusivePayloads, the mark counts only on the outermost
// context, applies only to the message routed with ctx (Route removes it
// before it calls a worker or a transport), and is ignored when the
// payload does not lie at buf[off:].
func WithPayloadRoom(ctx context.Context, buf []byte, off int) context.Context {
	return &roomCtx{Context: ctx, buf: buf, off: off}
}

// unmarkRoom returns ctx without the mark of WithPayloadRoom, and the
// mark (nil if it had none).
func unmarkRoom(ctx context.Context) (context.Context, *roomCtx) {
	if x, ok := ctx.(*roomCtx); ok {
		return x.Context, x
	}
	return ctx, nil
}

// PayloadRoom returns the memory m's payload lies in, when its sender
// gave it up with WithPayloadRoom and routed m straight to this worker:
// the payload is buf[off:off+len(m.Payload())], and the worker may
// overwrite all of buf[:cap(buf)] (once: it must not pass m on to
// another worker that could do the same). ok is false otherwise, and for
// an empty payload.
func (m *Message) PayloadRoom() (buf []byte, off int, ok bool) {
	r := m.room
	p := m.tm.Payload
	if r == nil || len(p) == 0 || r.off < 0 || r.off > len(r.buf) || len(p) > cap(r.buf)-r.off {
		return nil, 0, false
	}
	if &r.buf[:r.off+1][r.off] != &p[0] {
		return nil, 0, false
	}
	return r.buf[:cap(r.buf)], r.off, true
}
