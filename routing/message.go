package routing

import (
	"fmt"
	"unicode/utf8"
	"unsafe"

	"github.com/ockamhub/ockamhub/bare"
)

// Version is the only TransportMessage version that appears on the wire.
const Version = 1

// TransportMessage is what crosses a transport hop: a version, the onward
// and return routes, and an opaque payload (protocol.md §5).
//
// The zero value is an empty message that encodes with version 1.
// A TransportMessage is a plain value; it is not safe to mutate one that
// another goroutine is reading.
type TransportMessage struct {
	Version uint8 // as received; always encoded as 1
	Onward  Route // head = next hop
	Return  Route // head = most recent hop
	Payload []byte
}

// EncodedLen returns the number of bytes AppendBinary writes for m.
func (m *TransportMessage) EncodedLen() int {
	n := 1 + routeLen(m.Onward) + routeLen(m.Return)
	return n + bare.UintLen(uint64(len(m.Payload))) + len(m.Payload)
}

func routeLen(r Route) int {
	n := bare.UintLen(uint64(len(r)))
	for _, a := range r {
		n += 1 + bare.UintLen(uint64(len(a.Value))) + len(a.Value)
	}
	return n
}

// AppendBinary appends the BARE encoding of m to b, with version 1. It
// fails only for an address type of 128 and above, which no peer could read
// back.
// The output uses minimal varints and has no trailing bytes.
func (m *TransportMessage) AppendBinary(b []byte) ([]byte, error) {
	// The wire version is always 1 (protocol.md §5.2), whatever a relayed
	// message arrived with.
	b = append(b, Version)
	var err error
	if b, err = appendRoute(b, m.Onward, "onward_route"); err != nil {
		return b, err
	}
	if b, err = appendRoute(b, m.Return, "return_route"); err != nil {
		return b, err
	}
	return bare.AppendData(b, m.Payload), nil
}

// MarshalBinary returns the BARE encoding of m.
func (m *TransportMessage) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, m.EncodedLen()))
}

func appendRoute(b []byte, r Route, field string) ([]byte, error) {
	b = bare.AppendUint(b, uint64(len(r)))
	for _, a := range r {
		if a.Type > MaxType {
			return b, fmt.Errorf("routing: encoding %s address %s: %w", field, a, ErrType)
		}
		b = append(b, byte(a.Type))
		b = bare.AppendString(b, a.Value)
	}
	return b, nil
}

// UnmarshalBinary decodes a TransportMessage from data, replacing m.
// Trailing bytes after the payload are ignored, as the 2021 Rust and Elixir
// decoders ignore them. See [DecodeMessage] for aliasing and errors.
func (m *TransportMessage) UnmarshalBinary(data []byte) error {
	out, _, err := DecodeMessage(data)
	if err != nil {
		return err
	}
	*m = out
	return nil
}

// DecodeMessage decodes one TransportMessage from the start of data and
// returns it with the number of bytes it used (trailing bytes are left to the
// caller). The payload aliases data; copy it to keep it beyond data's life.
//
// Any input yields a message or a *DecodeError naming the field and offset;
// nothing larger than data is ever allocated. Address values must be valid
// UTF-8; a type-1 value in the Elixir 7-byte IPv4 form is normalised to
// "ip:port" text (protocol.md §2.4).
func DecodeMessage(data []byte) (TransportMessage, int, error) {
	return decode(data, nil)
}

// DecodeMessageFrom is DecodeMessage for a message that arrived over a
// transport hop: hop is put at the head of the return route (protocol.md
// §6.3) without copying the route again. Transports use it on every frame.
func DecodeMessageFrom(data []byte, hop Address) (TransportMessage, int, error) {
	return decode(data, &hop)
}

// DecodeMessageOwned is DecodeMessageFrom for a buffer handed over for
// good: data must never be modified afterwards (a transport's freshly read
// frame body). The decoded addresses then share its memory instead of
// being copied, one allocation fewer per message; the message keeps data
// alive for as long as its routes or payload are referenced, so a holder
// that keeps a route for long should clone it (Route.Clone).
func DecodeMessageOwned(data []byte, hop Address) (TransportMessage, int, error) {
	return decodeOwned(data, &hop, true)
}

// Field names, spelled out once so that decoding never builds strings.
type routeFields struct{ count, typ, value string }

var (
	onwardFields = routeFields{"onward_route count", "onward_route address type", "onward_route address value"}
	returnFields = routeFields{"return_route count", "return_route address type", "return_route address value"}
)

// decode validates the routes in a first pass, then builds them with one
// allocation for all the addresses and one string holding every value, so
// that a message costs three allocations whatever its route lengths.
func decode(data []byte, hop *Address) (TransportMessage, int, error) {
	return decodeOwned(data, hop, false)
}

func decodeOwned(data []byte, hop *Address, owned bool) (TransportMessage, int, error) {
	r := bare.NewReader(data)
	var m TransportMessage
	v, err := r.U8("version")
	if err != nil {
		return m, 0, wrap(err)
	}
	if v > 127 {
		// Rust reads a raw byte, Elixir a varint: they disagree from 128
		// on, so no peer can mean such a value.
		return m, 0, &DecodeError{Field: "version", Offset: 0, Err: ErrType}
	}
	m.Version = v
	start := r.Offset()
	nOnward, err := scanRoute(r, &onwardFields)
	if err != nil {
		return TransportMessage{}, 0, err
	}
	nReturn, err := scanRoute(r, &returnFields)
	if err != nil {
		return TransportMessage{}, 0, err
	}
	end := r.Offset()
	if m.Payload, err = r.Data("payload"); err != nil {
		return TransportMessage{}, 0, wrap(err)
	}
	extra := 0
	if hop != nil {
		extra = 1
	}
	if n := nOnward + nReturn + extra; n > 0 {
		addrs := make([]Address, n)
		var text string
		if owned && end > start {
			text = unsafe.String(&data[start], end-start)
		} else {
			text = string(data[start:end])
		}
		br := bare.NewReader(data[start:end])
		br.Uint("") // onward count, checked above
		if nOnward > 0 {
			m.Onward = addrs[:nOnward:nOnward]
			fillRoute(br, text, m.Onward)
		}
		br.Uint("") // return count
		if m.Return = addrs[nOnward:]; hop != nil {
			m.Return[0] = *hop
			fillRoute(br, text, m.Return[1:])
		} else if nReturn > 0 {
			fillRoute(br, text, m.Return)
		} else {
			m.Return = nil
		}
	}
	return m, r.Offset(), nil
}

// minAddressLen is the smallest encoded address: type byte + empty length.
const minAddressLen = 2

// scanRoute checks one encoded route and returns its length.
func scanRoute(r *bare.Reader, f *routeFields) (int, error) {
	n, err := r.Length(f.count, minAddressLen)
	if err != nil {
		return 0, wrap(err)
	}
	for range n {
		at := r.Offset()
		t, err := r.U8(f.typ)
		if err != nil {
			return 0, wrap(err)
		}
		if t > byte(MaxType) {
			return 0, &DecodeError{Field: f.typ, Offset: at, Err: ErrType}
		}
		at = r.Offset()
		val, err := r.Data(f.value)
		if err != nil {
			return 0, wrap(err)
		}
		if Type(t) == TCP {
			if _, ok, err := normalizeTCP(val); ok {
				if err != nil {
					return 0, &DecodeError{Field: f.value, Offset: at, Err: err}
				}
				continue
			}
		}
		if !utf8.Valid(val) {
			return 0, &DecodeError{Field: f.value, Offset: at, Err: ErrUTF8}
		}
	}
	return n, nil
}

// fillRoute decodes the addresses of an already checked route (its count
// read) into route, taking values as substrings of text, which holds the
// bytes br reads.
func fillRoute(br *bare.Reader, text string, route Route) {
	for i := range route {
		t, _ := br.U8("")
		val, _ := br.Data("")
		a := Address{Type: Type(t)}
		if a.Type == TCP {
			if s, ok, _ := normalizeTCP(val); ok {
				a.Value = s
				route[i] = a
				continue
			}
		}
		off := br.Offset() - len(val)
		a.Value = text[off : off+len(val)]
		route[i] = a
	}
}

// wrap converts a *bare.DecodeError into a *DecodeError of this package, so
// callers see one error type whatever layer failed.
func wrap(err error) error {
	if be, ok := err.(*bare.DecodeError); ok {
		return &DecodeError{Field: be.Field, Offset: be.Offset, Err: be.Err}
	}
	return err
}
