package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// stampSize is the send timestamp at the start of every payload: the
// nanoseconds since the run's epoch, big-endian. Senders and receivers are in
// the same process, so one monotonic clock times both one-way and round
// trips.
const stampSize = 8

// MinSize is the smallest payload: the timestamp.
const MinSize = stampSize

var errMalformed = errors.New("loadgen: malformed frame")

// frame is a pre-encoded frame (u16 length ‖ TransportMessage) whose
// payload starts at off; a sender copies it and patches the timestamp.
type frame struct {
	b   []byte
	off int // payload offset in b
}

// newFrame encodes one frame for onward and ret with a zero payload of
// size bytes.
func newFrame(onward, ret routing.Route, size int) (frame, error) {
	m := routing.TransportMessage{Version: routing.Version, Onward: onward, Return: ret, Payload: make([]byte, size)}
	b, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		return frame{}, fmt.Errorf("loadgen: %d-byte payload: %w", size, err)
	}
	return frame{b: b, off: len(b) - size}, nil
}

// append appends the frame, stamped with ts, to dst.
func (f frame) append(dst []byte, ts int64) []byte {
	n := len(dst)
	dst = append(dst, f.b...)
	binary.BigEndian.PutUint64(dst[n+f.off:], uint64(ts))
	return dst
}

// uvarint reads a BARE uint at b[i:], returning the value and the next
// offset, or -1.
func uvarint(b []byte, i int) (uint64, int) {
	if i < len(b) && b[i] < 0x80 { // the common case: one byte
		return uint64(b[i]), i + 1
	}
	if i > len(b) {
		return 0, -1
	}
	v, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

// skipRoute returns the offset after the route encoded at b[i:], or -1.
func skipRoute(b []byte, i int) int {
	n, i := uvarint(b, i)
	if i < 0 || n > uint64(len(b)) {
		return -1
	}
	for range n {
		i++ // address type
		var l uint64
		if l, i = uvarint(b, i); i < 0 || l > uint64(len(b)-i) {
			return -1
		}
		i += int(l)
	}
	return i
}

// parseBody finds the encoded return route and the payload of a
// TransportMessage body without decoding anything else: the load
// generator's readers need no more.
func parseBody(b []byte) (ret, payload []byte, err error) {
	if len(b) < 1 {
		return nil, nil, errMalformed
	}
	i := skipRoute(b, 1)
	if i < 0 {
		return nil, nil, errMalformed
	}
	j := skipRoute(b, i)
	if j < 0 {
		return nil, nil, errMalformed
	}
	n, k := uvarint(b, j)
	if k < 0 || n > uint64(len(b)-k) {
		return nil, nil, errMalformed
	}
	return b[i:j], b[k : k+int(n)], nil
}

// stamp returns the timestamp a payload carries, or false.
func stamp(payload []byte) (int64, bool) {
	if len(payload) < stampSize {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(payload)), true
}

// appendReply appends a frame that sends payload back along ret (an
// encoded route, used as the onward route) from the encoded return route
// from: what a worker's reply looks like on the wire.
func appendReply(dst, ret, from, payload []byte) []byte {
	var lenBuf [binary.MaxVarintLen64]byte
	pl := binary.PutUvarint(lenBuf[:], uint64(len(payload)))
	n := 1 + len(ret) + len(from) + pl + len(payload)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	dst = append(dst, routing.Version)
	dst = append(dst, ret...)
	dst = append(dst, from...)
	dst = append(dst, lenBuf[:pl]...)
	return append(dst, payload...)
}

// encodeRoute returns the BARE encoding of r.
func encodeRoute(r routing.Route) []byte {
	m := routing.TransportMessage{Onward: r}
	b, _ := m.AppendBinary(nil)
	// version ‖ onward ‖ empty return (1 byte) ‖ empty payload (1 byte)
	return b[1 : len(b)-2]
}

// MaxSize returns the largest payload a scenario can carry: what fits in
// one frame (65535 bytes) once the routes of the largest message the
// scenario puts on the wire are encoded, for every target.
func MaxSize(s Scenario) int {
	// The largest messages: a hub's forwarded delivery (onward [local],
	// return [alias, local]) with the load generator's 8-character
	// addresses; echo and the baselines carry less.
	over := 1 + len(encodeRoute(routing.Route{routing.LocalAddress("c0000000")})) +
		len(encodeRoute(routing.Route{routing.LocalAddress("00000000"), routing.LocalAddress("c0000000")})) + 3
	if s == Secure {
		// The channel wraps the payload in an inner TransportMessage (its
		// routes hold 32-hex addresses), a 2-byte nonce and a 16-byte tag,
		// all inside a Vec<u8>; the outer routes hold 32-hex addresses and
		// the hub's 8-hex aliases.
		over = 400
	}
	return tcp.MaxFrameSize - over
}
