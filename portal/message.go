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
	TagPing       Tag = 0 // 00 [‖ "oh" ‖ uvarint(1) ‖ uvarint(window) ‖ uvarint(n) ‖ n early bytes, to early-data outlets only]
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
// Features added since are announced in the offer's feature bits, not by
// a new version: an older ockamhub inlet drops an offer whose version it
// does not know.
const ExtensionVersion = 1

// FeatureEarlyData, in an offer's features, says that the outlet reads
// the early-data form of the Ping: the inlet's window (so the inlet sends
// no first Credit) and the client's first bytes, which it writes to the
// target before it answers.
const FeatureEarlyData = 1 << 0

// MaxEarly bounds the early data an inlet carries in its Ping: one small
// read, so that the Ping's frame stays far below 65535 bytes.
const MaxEarly = 4 << 10

// Message is one decoded G3 portal message (with the ockamhub extension
// variants). The zero value is a Ping. Data aliases the decoded input.
type Message struct {
	Tag Tag
	// Data is the payload of Payload and Data.
	Data []byte
	// Offset is the stream offset of Data's first byte (TagData), the
	// credit limit (TagCredit), the total bytes sent (TagDisconnect with
	// HasTotal), or the inlet's window (TagPing with Early).
	Offset uint64
	// HasTotal marks a Disconnect that carries the sender's total.
	HasTotal bool
	// Written is what a Credit's sender had written to its local socket
	// when it granted (HasWritten: the Credit carries it).
	Written    uint64
	HasWritten bool
	// Abort marks a Disconnect sent because of an error (extension peers):
	// the receiver must treat its stream as failed, not complete.
	Abort bool
	// Ext is the extension offer of a Pong, when it carries one.
	Ext *Extension
	// Early marks a Ping in the early-data form; Data then holds the
	// early bytes (perhaps none) and Offset the inlet's window.
	Early bool
}

// Extension is the flow-control offer of an ockamhub outlet's Pong: the
// version it speaks and the initial window it grants the inlet, i.e. the
// inlet may send stream bytes [0, Window) before the first Credit; then,
// from outlets that know them, its features and how many of the Ping's
// early bytes it took (wrote to the target): stream bytes [0, Early).
//
//	01 ‖ "oh" ‖ uvarint(version) ‖ uvarint(window) [‖ uvarint(features) ‖ uvarint(early)]
//
// The last two are sent only when not both zero, so the offer of an
// outlet without features is the one older ockamhub inlets know; those
// ignore them (trailing bytes).
type Extension struct {
	Version  uint64
	Window   uint64
	Features uint64
	Early    uint64
}

// AppendPing appends a G3 Ping (00). It is also the G2 handshake.
func AppendPing(b []byte) []byte { return append(b, byte(TagPing)) }

// AppendPingEarly appends a Ping in the early-data form:
// 00 ‖ "oh" ‖ uvarint(version) ‖ uvarint(window) ‖ uvarint(len) ‖ early.
// window is what the inlet's first Credit would grant: an outlet that
// reads this form (FeatureEarlyData) needs no Credit, and says in its Pong
// how many of the early bytes it took. A 2021 G3 outlet, or an ockamhub
// one before early data, reads a Ping and ignores the rest (serde_bare);
// but a G2 outlet (2021 Rust, or ockamhub before early data) refuses it,
// so it goes only to an outlet that offered FeatureEarlyData before
// (portals.md §4).
func AppendPingEarly(b []byte, window uint64, early []byte) []byte {
	b = append(append(b, byte(TagPing)), ExtensionMagic...)
	b = bare.AppendUint(b, ExtensionVersion)
	b = bare.AppendUint(b, window)
	return bare.AppendData(b, early)
}

// AppendPong appends a G3 Pong, with the extension offer when ext is not
// nil.
func AppendPong(b []byte, ext *Extension) []byte {
	b = append(b, byte(TagPong))
	if ext != nil {
		b = append(b, ExtensionMagic...)
		b = bare.AppendUint(b, ext.Version)
		b = bare.AppendUint(b, ext.Window)
		if ext.Features != 0 || ext.Early != 0 {
			b = bare.AppendUint(b, ext.Features)
			b = bare.AppendUint(b, ext.Early)
		}
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

// AppendCreditWritten appends an extension Credit that also says how many
// stream bytes its sender had written to its local socket:
// 04 ‖ uvarint(limit) ‖ uvarint(written). The sender of the data may then
// reuse the memory of every byte before written (an ockamhub peer that
// shrinks its grants below its window, Options.SharedWindow, proves no
// more with the limit alone); an older ockamhub peer reads a Credit and
// ignores the trailing written, and a 2021 peer is never sent a Credit.
func AppendCreditWritten(b []byte, limit, written uint64) []byte {
	return bare.AppendUint(AppendCredit(b, limit), written)
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
		m.Offset, m.Data, m.Early = decodeEarly(r.Rest())
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
		// What follows the limit is the sender's written count, or (from
		// a peer that does not send it) bytes to ignore, as before.
		if r.Len() > 0 {
			if w, err := r.Uint("credit written"); err == nil {
				m.Written, m.HasWritten = w, true
			}
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
	e := &Extension{Version: v, Window: w}
	// Features and the early-data count come together or not at all.
	if f, err := r.Uint("extension features"); err == nil {
		if n, err := r.Uint("extension early"); err == nil {
			e.Features, e.Early = f, n
		}
	}
	return e
}

// decodeEarly reads the early data from the bytes after a Ping's tag;
// anything else (nothing, or bytes that are not early data) is a plain
// Ping, as it is to a 2021 outlet.
func decodeEarly(rest []byte) (window uint64, early []byte, ok bool) {
	if len(rest) < len(ExtensionMagic) || string(rest[:len(ExtensionMagic)]) != ExtensionMagic {
		return 0, nil, false
	}
	r := bare.NewReader(rest[len(ExtensionMagic):])
	if v, err := r.Uint("early version"); err != nil || v != ExtensionVersion {
		return 0, nil, false
	}
	w, err := r.Uint("early window")
	if err != nil {
		return 0, nil, false
	}
	d, err := r.Data("early data")
	if err != nil || len(d) > MaxEarly {
		return 0, nil, false
	}
	return w, d, true
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
