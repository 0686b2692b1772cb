package portal

import (
	"fmt"

	"github.com/ockamhub/ockamhub/bare"
)

// Generation is the 2021 portal protocol a peer speaks (portals.md §0).
type Generation uint8

const (
	// G3 is the enum PortalMessage of ockam_transport_tcp 0.37.0 (13 Dec
	// 2021) onwards: Ping, Pong, Disconnect, Payload.
	G3 Generation = iota
	// G2 is the struct PortalMessage{binary} of 0.22.0–0.36.0 (Sep–Dec
	// 2021), with a one-byte handshake and no close signal.
	G2
)

func (g Generation) String() string {
	switch g {
	case G3:
		return "G3"
	case G2:
		return "G2"
	}
	return fmt.Sprintf("Generation(%d)", uint8(g))
}

// Tag is the variant index of a G3 PortalMessage, its first byte on the
// wire (a BARE uvarint; every tag here fits in one byte).
type Tag uint8

// G3 variants (portals.md §4.1), then the ockamhub extension variants, which
// are only ever sent to a peer that offered the extension in its Pong (see
// Extension). A 2021 Rust worker never receives tags ≥ 4.
const (
	TagPing       Tag = 0 // 00
	TagPong       Tag = 1 // 01 [‖ extension offer, ockamhub outlets only]
	TagDisconnect Tag = 2 // 02 [‖ uvarint(total bytes sent) [‖ 01 aborted], extension peers only]
	TagPayload    Tag = 3 // 03 ‖ uvarint(n) ‖ n bytes
	TagCredit     Tag = 4 // 04 ‖ uvarint(limit): the sender may send stream bytes [0, limit) (extension)
	TagData       Tag = 5 // 05 ‖ uvarint(offset) ‖ uvarint(n) ‖ n bytes (extension)
)

// ExtensionMagic starts the extension offer that an ockamhub outlet appends
// to its Pong: 01 ‖ "oh" ‖ uvarint(version) ‖ uvarint(window). A 2021 Rust
// inlet decodes the Pong and ignores trailing bytes (serde_bare, portals.md
// §4.1), so the offer is invisible to it.
const ExtensionMagic = "oh"

// ExtensionVersion is the version of the extension this package speaks.
const ExtensionVersion = 1

// Message is one decoded G3 portal message (with the ockamhub extension
// variants). The zero value is a Ping. Data aliases the decoded input.
type Message struct {
	Tag Tag
	// Data is the payload of Payload and Data.
	Data []byte
	// Offset is the stream offset of Data's first byte (TagData), the
	// credit limit (TagCredit), or the total bytes sent (TagDisconnect with
	// HasTotal).
	Offset uint64
	// HasTotal marks a Disconnect that carries the sender's total.
	HasTotal bool
	// Abort marks a Disconnect sent because of an error (extension peers):
	// the receiver must treat its stream as failed, not complete.
	Abort bool
	// Ext is the extension offer of a Pong, when it carries one.
	Ext *Extension
}

// Extension is the flow-control offer of an ockamhub outlet's Pong: the
// version it speaks and the initial window it grants the inlet, i.e. the
// inlet may send stream bytes [0, Window) before the first Credit.
type Extension struct {
	Version uint64
	Window  uint64
}

// AppendPing appends a G3 Ping (00). It is also the G2 handshake.
func AppendPing(b []byte) []byte { return append(b, byte(TagPing)) }

// AppendPong appends a G3 Pong, with the extension offer when ext is not
// nil.
func AppendPong(b []byte, ext *Extension) []byte {
	b = append(b, byte(TagPong))
	if ext != nil {
		b = append(b, ExtensionMagic...)
		b = bare.AppendUint(b, ext.Version)
		b = bare.AppendUint(b, ext.Window)
	}
	return b
}

// AppendDisconnect appends a G3 Disconnect (02); with total ≥ 0 (extension
// peers only) it carries the number of stream bytes sent, so that the
// receiver can tell a complete stream from a truncated one.
func AppendDisconnect(b []byte, total int64) []byte {
	b = append(b, byte(TagDisconnect))
	if total >= 0 {
		b = bare.AppendUint(b, uint64(total))
	}
	return b
}

// AppendAbort appends an extension Disconnect that reports an error:
// 02 ‖ uvarint(total) ‖ 01.
func AppendAbort(b []byte, total uint64) []byte {
	return append(bare.AppendUint(append(b, byte(TagDisconnect)), total), 1)
}

// AppendPayload appends a G3 Payload: 03 ‖ uvarint(len) ‖ data.
func AppendPayload(b, data []byte) []byte {
	return bare.AppendData(append(b, byte(TagPayload)), data)
}

// AppendCredit appends an extension Credit: 04 ‖ uvarint(limit).
func AppendCredit(b []byte, limit uint64) []byte {
	return bare.AppendUint(append(b, byte(TagCredit)), limit)
}

// AppendData appends an extension Data: 05 ‖ uvarint(offset) ‖
// uvarint(len) ‖ data.
func AppendData(b []byte, offset uint64, data []byte) []byte {
	b = bare.AppendUint(append(b, byte(TagData)), offset)
	return bare.AppendData(b, data)
}

// DecodeG3 decodes a G3 portal message as serde_bare does: the tag is a
// uvarint (a non-canonical one is accepted), trailing bytes after the body
// are ignored, a short body is an error. Extension tags (Credit, Data) are
// decoded only when ext is set; otherwise they are ErrUnknownTag, as in
// Rust. It never panics and never allocates.
func DecodeG3(p []byte, ext bool) (Message, error) {
	r := bare.NewReader(p)
	tag, err := r.Uint("portal message tag")
	if err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
	}
	m := Message{Tag: Tag(min(tag, 255))}
	switch {
	case tag == uint64(TagPing):
	case tag == uint64(TagPong):
		m.Ext = decodeOffer(r.Rest())
	case tag == uint64(TagDisconnect):
		if ext && r.Len() > 0 {
			if m.Offset, err = r.Uint("disconnect total"); err != nil {
				return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
			}
			m.HasTotal = true
			if f, err := r.U8("disconnect abort"); err == nil && f == 1 {
				m.Abort = true
			}
		}
	case tag == uint64(TagPayload):
		if m.Data, err = r.Data("payload"); err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
		}
	case ext && tag == uint64(TagCredit):
		if m.Offset, err = r.Uint("credit limit"); err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
		}
	case ext && tag == uint64(TagData):
		if m.Offset, err = r.Uint("data offset"); err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
		}
		if m.Data, err = r.Data("data"); err != nil {
			return Message{}, fmt.Errorf("%w: %w", ErrShort, err)
		}
	default:
		return Message{}, fmt.Errorf("%w: %d", ErrUnknownTag, tag)
	}
	return m, nil
}

// decodeOffer reads an extension offer from the bytes after a Pong's tag;
// anything else (nothing, or bytes that are not an offer) is no offer.
func decodeOffer(rest []byte) *Extension {
	if len(rest) < len(ExtensionMagic) || string(rest[:len(ExtensionMagic)]) != ExtensionMagic {
		return nil
	}
	r := bare.NewReader(rest[len(ExtensionMagic):])
	v, err := r.Uint("extension version")
	if err != nil || v == 0 {
		return nil
	}
	w, err := r.Uint("extension window")
	if err != nil {
		return nil
	}
	return &Extension{Version: v, Window: w}
}

// G2Handshake is the G2 handshake message, both ways: a BARE empty
// Vec<u8>. A G2 receiver accepts any one-byte payload; always send this.
var G2Handshake = []byte{0x00}

// AppendG2Data appends a G2 data message, PortalMessage{binary}:
// uvarint(len) ‖ data.
func AppendG2Data(b, data []byte) []byte { return bare.AppendData(b, data) }

// DecodeG2Data decodes a G2 data message; trailing bytes are ignored, as
// serde_bare ignores them. The result aliases p.
func DecodeG2Data(p []byte) ([]byte, error) {
	d, err := bare.NewReader(p).Data("binary")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShort, err)
	}
	return d, nil
}

// IsG2Handshake reports whether p is a G2 handshake: exactly one byte, the
// only test the Rust G2 worker applies (portals.md §4.2).
func IsG2Handshake(p []byte) bool { return len(p) == 1 }
