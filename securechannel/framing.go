package securechannel

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// This file holds the pure codecs of the channel's payloads (protocol.md
// §10.4, §10.5): functions on []byte that never panic on input and never
// allocate more than it holds. The workers in channel.go and listener.go do
// the I/O.

// m1Len is the size of Noise XX message 1 with the empty payload Ockam sends:
// the initiator's ephemeral public key alone. The listener accepts nothing
// else, which is also what tells the two listener-message forms apart.
const m1Len = 32

// ListenerMessageForm selects how the first handshake message is wrapped for
// the listener (protocol.md §10.4). The zero value is the April 2021 form
// that ockam 0.8.0 programs send and expect.
type ListenerMessageForm uint8

const (
	// ListenerMessageEnum is the April 2021 form, used until build-trust/ockam
	// 7ecef1e (2021-04-29): BARE enum SecureChannelListenerMessage, variant 0
	// CreateResponderChannel{payload: Vec<u8>}.
	ListenerMessageEnum ListenerMessageForm = iota // 00 ‖ uvarint(32) ‖ M1: 00 20 <32 bytes>, 34 bytes

	// ListenerMessageStruct is the form used from 7ecef1e to the end of June
	// 2021: BARE struct CreateResponderChannelMessage{payload: Vec<u8>,
	// callback_address: Option<Address>}. Create always sends None.
	ListenerMessageStruct // uvarint(32) ‖ M1 ‖ option: 20 <32 bytes> 00, or 20 <32 bytes> 01 <BARE Address>
)

// String returns "enum" or "struct".
func (f ListenerMessageForm) String() string {
	switch f {
	case ListenerMessageEnum:
		return "enum"
	case ListenerMessageStruct:
		return "struct"
	}
	return fmt.Sprintf("ListenerMessageForm(%d)", uint8(f))
}

// appendListenerMessage appends M1 wrapped as the listener message of form f.
// callback is the struct form's optional callback address (nil for None,
// which is all Create ever sends); the enum form has no such field.
func appendListenerMessage(b []byte, f ListenerMessageForm, m1 []byte, callback *routing.Address) []byte {
	if f == ListenerMessageEnum {
		b = append(b, 0) // variant 0: CreateResponderChannel
		return bare.AppendData(b, m1)
	}
	b = bare.AppendData(b, m1)
	if callback == nil {
		return append(b, 0) // None
	}
	b = append(b, 1, byte(callback.Type)) // Some, then the BARE Address
	return bare.AppendString(b, callback.Value)
}

// parseListenerMessage decodes the payload a listener receives and returns
// M1 (aliasing p), the form it came in and, for the struct form, the callback
// address if one was given.
//
// The forms are told apart by their first byte: the enum form starts with its
// variant index 00, the struct form with M1's length 20 (a zero-length M1 is
// invalid in both). Each form must then fill p exactly, with a 32-byte M1,
// so every input is either exactly one form or rejected with
// ErrListenerMessage.
func parseListenerMessage(p []byte) (m1 []byte, f ListenerMessageForm, callback *routing.Address, err error) {
	if len(p) == 0 {
		return nil, 0, nil, fmt.Errorf("%w: empty", ErrListenerMessage)
	}
	r := bare.NewReader(p)
	if p[0] == 0 {
		f = ListenerMessageEnum
		_, _ = r.U8("variant") // 00, checked above
	} else {
		f = ListenerMessageStruct
	}
	m1, err = r.Data("payload")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w (%s form): %w", ErrListenerMessage, f, err)
	}
	if len(m1) != m1Len {
		return nil, 0, nil, fmt.Errorf("%w (%s form): M1 is %d bytes, want %d", ErrListenerMessage, f, len(m1), m1Len)
	}
	if f == ListenerMessageStruct {
		tag, err := r.U8("callback_address option")
		if err != nil {
			return nil, 0, nil, fmt.Errorf("%w (struct form): %w", ErrListenerMessage, err)
		}
		switch tag {
		case 0:
		case 1:
			a, err := readAddress(r)
			if err != nil {
				return nil, 0, nil, fmt.Errorf("%w (struct form): %w", ErrListenerMessage, err)
			}
			callback = &a
		default:
			return nil, 0, nil, fmt.Errorf("%w (struct form): option tag %#02x", ErrListenerMessage, tag)
		}
	}
	if r.Len() != 0 {
		return nil, 0, nil, fmt.Errorf("%w (%s form): %d trailing bytes", ErrListenerMessage, f, r.Len())
	}
	return m1, f, callback, nil
}

// readAddress reads one BARE Address: a type byte below 128, then its value
// as BARE data holding UTF-8 text (protocol.md §5.2).
func readAddress(r *bare.Reader) (routing.Address, error) {
	t, err := r.U8("address type")
	if err != nil {
		return routing.Address{}, err
	}
	if t > byte(routing.MaxType) {
		return routing.Address{}, fmt.Errorf("address type %d: %w", t, routing.ErrType)
	}
	v, err := r.Data("address value")
	if err != nil {
		return routing.Address{}, err
	}
	if !utf8.Valid(v) {
		return routing.Address{}, routing.ErrUTF8
	}
	return routing.Address{Type: routing.Type(t), Value: string(v)}, nil
}

// appendVec appends b as a BARE Vec<u8>: how M2 and M3 travel (protocol.md
// §10.4), and the outer layer of a data message.
func appendVec(out, b []byte) []byte { return bare.AppendData(out, b) }

// parseVec returns the bytes of a payload that is exactly one BARE Vec<u8>,
// aliasing p. Trailing bytes are refused: no 2021 peer sends any, and a
// payload is authenticated only inside the Vec.
func parseVec(p []byte) ([]byte, error) {
	r := bare.NewReader(p)
	b, err := r.Data("Vec<u8>")
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d trailing bytes", r.Len())
	}
	return b, nil
}

// Data messages (protocol.md §10.5). The payload of the outer
// TransportMessage is
//
//	uvarint(len(blob)) ‖ blob          a BARE Vec<u8>
//	blob = n(u16 big-endian) ‖ AES-256-GCM(key, 00×10 ‖ n, aad = empty, inner) ‖ tag(16)
//
// where inner is the whole BARE TransportMessage being carried.
const (
	counterLen = 2                           // the u16 big-endian counter in front of the ciphertext
	minBlobLen = counterLen + noise.Overhead // an empty plaintext still has its tag
)

// sealedLen returns the size of the data-message payload for a plaintext of
// n bytes.
func sealedLen(n int) int {
	blob := counterLen + n + noise.Overhead
	return bare.UintLen(uint64(blob)) + blob
}

// appendSealed encrypts plaintext under counter n with c and appends the
// data-message payload (Vec<u8> of n ‖ ciphertext ‖ tag) to out. Ockam
// deviation (protocol.md §10.5): the counter is a u16 carried in clear in
// front of the ciphertext, and the AAD is empty (Rust; Elixir's June code used
// h). The caller guarantees n is never reused with c.
func appendSealed(out []byte, c *noise.CipherState, n uint16, plaintext []byte) []byte {
	out = bare.AppendUint(out, uint64(counterLen+len(plaintext)+noise.Overhead))
	out = binary.BigEndian.AppendUint16(out, n)
	return c.Encrypt(out, n, plaintext)
}

// dataHeaderLen returns the size of what precedes the ciphertext in the
// data-message payload for a plaintext of n bytes: the Vec<u8> length and
// the counter.
func dataHeaderLen(n int) int {
	return bare.UintLen(uint64(counterLen+n+noise.Overhead)) + counterLen
}

// sealInPlace turns buf, which holds dataHeaderLen(len(plaintext)) bytes of
// room followed by the plaintext, into the data-message payload for counter
// n, sealing the plaintext where it is: the payload appendSealed would
// append. hdr is the size of the room; buf must have the capacity for
// noise.Overhead more bytes, or it is reallocated.
func sealInPlace(buf []byte, hdr int, c *noise.CipherState, n uint16) []byte {
	pt := buf[hdr:]
	b := bare.AppendUint(buf[:0], uint64(counterLen+len(pt)+noise.Overhead))
	b = binary.BigEndian.AppendUint16(b, n)
	// b ends exactly where pt starts: Seal's output overlaps its input
	// exactly, which AES-GCM allows.
	return c.Encrypt(b, n, pt)
}

// layOutInner prepares the data message for inner in the memory a sender
// gave up around inner.Payload (node.Message.PayloadRoom: the payload is
// room[off:off+len(inner.Payload)], and all of room[:cap(room)] may be
// overwritten): it encodes the inner message's head (version, routes,
// payload length) right in front of the payload, and returns room[start:end]
// where end is the payload's end and start leaves hdr bytes (the
// data-message header) in front of the head, ready for sealInPlace, which
// puts the tag in the room behind. ptLen is inner.EncodedLen(). ok is
// false, with room unmodified, when there is not enough room in front
// (hdr and the head) or behind (noise.Overhead): the caller then seals
// into a new buffer, from inner.Payload, which layOutInner never
// modifies.
func layOutInner(room []byte, off int, inner *routing.TransportMessage, hdr, ptLen int) (buf []byte, ok bool, err error) {
	n := len(inner.Payload)
	head := ptLen - n
	start, end := off-head-hdr, off+n
	if off < 0 || end > cap(room) || start < 0 || cap(room)-end < noise.Overhead {
		return nil, false, nil
	}
	h := routing.TransportMessage{Version: inner.Version, Onward: inner.Onward, Return: inner.Return}
	if h.EncodedLen() != head-bare.UintLen(uint64(n))+1 {
		return nil, false, nil // never: EncodedLen counts what AppendBinary writes
	}
	// The head without the payload ends with the length 0 (one byte):
	// replaced by n's. It ends exactly at off, as counted above, so
	// nothing is appended beyond the room in front.
	b, err := h.AppendBinary(room[start+hdr : start+hdr : off])
	if err != nil {
		return nil, false, err
	}
	bare.AppendUint(b[:len(b)-1], uint64(n))
	return room[start:end], true, nil
}

// openSealed decodes a data-message payload and decrypts it with c,
// returning the counter and the plaintext (newly allocated). It returns an
// error wrapping ErrDataMessage for a malformed payload and
// noise.ErrAuthentication for one that does not authenticate. The nonce is
// taken from the message, as Rust does; replay checks are the caller's.
func openSealed(c *noise.CipherState, payload []byte) (uint16, []byte, error) {
	return openData(c, payload, false)
}

// openInPlace is openSealed decrypting where the ciphertext lies: the
// plaintext aliases payload, which is overwritten (with zeros when the
// message does not authenticate). The caller must own payload: nothing
// else may read it, or read it again.
func openInPlace(c *noise.CipherState, payload []byte) (uint16, []byte, error) {
	return openData(c, payload, true)
}

func openData(c *noise.CipherState, payload []byte, inPlace bool) (uint16, []byte, error) {
	blob, err := parseVec(payload)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrDataMessage, err)
	}
	if len(blob) < minBlobLen {
		return 0, nil, fmt.Errorf("%w: blob of %d bytes, want at least %d", ErrDataMessage, len(blob), minBlobLen)
	}
	n := binary.BigEndian.Uint16(blob)
	var out []byte // nil: a new buffer
	if inPlace {
		out = blob[counterLen:counterLen]
	}
	pt, err := c.Decrypt(out, n, blob[counterLen:])
	if err != nil {
		return n, nil, err
	}
	return n, pt, nil
}
