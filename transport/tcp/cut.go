package tcp

import (
	"errors"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Cut-through (Config.CutThrough): a large frame whose message only
// crosses the node (a forwarder, then another connection's alias or
// address) is relayed without its payload ever reaching user space. When
// a reader has the head of a large frame buffered and the rest still in
// the socket, planCut decodes the head (the routes, the payload's length)
// from what is buffered and resolves its destination through the node's
// route rewriters (node.Resolve), without side effects. On Linux
// (cut_linux.go) the reader then
//
//  1. takes a pipe from a small pool (no connection holds one), writes into
//     it the outgoing frame's head, encoded as the usual path encodes it
//     (encode in write.go), and the payload bytes it had read with the
//     head, and moves the rest of the payload from the socket into the
//     pipe with splice(2) as it arrives, under the frame timeout (as a
//     partial frame waits today). Nothing has been written to the
//     destination yet: a source that stalls or dies mid-frame costs only
//     itself, and anything unexpected returns the frame to the usual path
//     (its payload read back from the pipe);
//  2. takes the destination's right to write only if its send queue is
//     empty and nobody writes (as a routing goroutine writes directly), or
//     else returns the frame to the usual path;
//  3. accounts for the message (node.Commit: the routing counters and the
//     forwarder's last use; the connections' frame and byte counters), and
//     splices the pipe into the destination's socket without waiting. If
//     the socket fills up part-way, what is left of the frame is read from
//     the pipe into a buffer and handed, with the right to write, to a
//     writer goroutine, as a direct write the socket does not take in full
//     is today.
//
// After a frame cut through, the reader reads only as many bytes as that
// frame's head took (with its payload, into the pipe, if they are there;
// else from the socket), the head of the next frame if its routes are the
// same, so that its payload stays in the socket for the next splice and
// none of it is copied; a longer head is read in full (up to cutPeek bytes)
// before it is judged. A frame that is not cut through ends that. A head
// that a stream repeats is lent to the pipe, not copied into it
// (headpage_linux.go).

// cutPlan is what planCut found out about a large frame.
type cutPlan struct {
	dst      *conn
	res      node.Resolution
	out      routing.TransportMessage // the message as it leaves, without its payload
	payload  int                      // the payload's length
	headLen  int                      // bytes of the incoming body before the payload
	frameLen int                      // the outgoing frame's body length
}

// cutPeek bounds what a reader reads after a frame it has cut through:
// enough for the head of the next frame (its routes), and not its payload,
// which may then be spliced too.
const cutPeek = 512

// headCache is the last head a reader decoded for a cut-through (its
// version and routes, followed by a 0), and the message decoded from it:
// the routes, copied out of the frame, are never modified.
type headCache struct {
	key []byte
	m   routing.TransportMessage
}

// maxCutRoute bounds the addresses of a route walked by planCut.
const maxCutRoute = 256

// planCut decides whether the frame of n bytes whose first bytes are p
// (the rest is still in the socket) may be cut through, and where to. It
// has no side effects. Any doubt says no: the usual path then handles the
// frame, and its errors.
func (rd *reader) planCut(p []byte, n int) (cutPlan, bool) {
	c := rd.c
	var plan cutPlan
	m, headLen, payload, ok := rd.decodeHead(p, n)
	if !ok {
		return plan, false
	}
	plan.headLen, plan.payload = headLen, payload
	t := c.t
	res, ok := t.node.Resolve(m.Onward)
	if !ok {
		return plan, false
	}
	onward := res.Onward
	var dst *conn
	if res.Worker != nil {
		// A connection's alias, as aliasWorker.HandleMessage sends.
		aw, ok := res.Worker.(aliasWorker)
		if !ok || aw.c.t != t {
			return plan, false
		}
		dst = aw.c
		for len(onward) > 0 && onward[0] == dst.addr {
			onward = onward[1:]
		}
	} else {
		// A connection's address, as RouteMessage sends.
		if onward[0].Type != routing.TCP {
			return plan, false
		}
		v, ok := t.conns.Load(onward[0])
		if !ok {
			return plan, false
		}
		dst = v.(*conn)
		onward = onward[1:]
	}
	if len(onward) == 0 || dst.rc == nil {
		return plan, false
	}
	m.Onward = onward
	m.Payload = nil
	plan.frameLen = m.EncodedLen() - 1 + bare.UintLen(uint64(payload)) + payload
	if plan.frameLen > t.cfg.MaxFrameSize {
		return plan, false
	}
	plan.dst, plan.res, plan.out = dst, res, m
	return plan, true
}

// cutHead walks the head of the frame body p: its version, two routes
// and the payload's length. end is where the routes end and headLen where
// the payload starts; short reports that p ended inside the head (more
// bytes may make it whole), as opposed to a head that is not one.
func cutHead(p []byte) (end, headLen int, payload uint64, ok, short bool) {
	r := bare.NewReader(p)
	fail := func(err error) (int, int, uint64, bool, bool) {
		return 0, 0, 0, false, errors.Is(err, bare.ErrShort) || errors.Is(err, bare.ErrLength)
	}
	if _, err := r.U8(""); err != nil {
		return fail(err)
	}
	for range 2 {
		k, err := r.Uint("")
		if err != nil {
			return fail(err)
		}
		if k > maxCutRoute {
			return 0, 0, 0, false, false
		}
		for range k {
			if _, err := r.U8(""); err != nil {
				return fail(err)
			}
			if _, err := r.Data(""); err != nil {
				return fail(err)
			}
		}
	}
	end = r.Offset()
	payload, err := r.Uint("")
	if err != nil {
		return fail(err)
	}
	return end, r.Offset(), payload, true, false
}

// decodeHead decodes the head of the frame of n bytes whose first bytes
// are p (the rest may still be in the socket): its message without the
// payload (m.Payload is empty; its routes must not be modified), where the
// payload starts in the body (headLen) and its length. It reports false
// when the head is not all in p, does not decode, or the payload does not
// end exactly where the frame does (trailing bytes, ignored by decoders,
// would not be relayed: the usual path drops them).
func (rd *reader) decodeHead(p []byte, n int) (m routing.TransportMessage, headLen, payload int, ok bool) {
	end, headLen, size, ok, _ := cutHead(p)
	if !ok || size > MaxFrameSize || headLen+int(size) != n {
		return m, 0, 0, false
	}
	// Decoded by the same decoder as every frame (routing validates the
	// addresses), from a copy of the routes with an empty payload; a
	// stream of frames with the same routes is decoded once.
	if hc := &rd.headCache; hc.key != nil && string(hc.key[:len(hc.key)-1]) == string(p[:end]) {
		m = hc.m
	} else {
		head := make([]byte, end+1)
		copy(head, p[:end])
		var used int
		var err error
		m, used, err = routing.DecodeMessageFrom(head, rd.c.addr)
		if err != nil || used != len(head) {
			return m, 0, 0, false
		}
		hc.key, hc.m = head, m
	}
	return m, headLen, int(size), true
}

// appendHead appends the outgoing frame's length prefix and head (up to
// and including the payload's length) to b, as encode does for a large
// payload.
func (plan *cutPlan) appendHead(b []byte) ([]byte, error) {
	return appendLargeHead(b, &plan.out, plan.frameLen, plan.payload)
}
