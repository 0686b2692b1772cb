package routing

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is an address's transport type: the first byte of every encoded
// address. Only types below 128 are valid (protocol.md §5.2).
type Type uint8

// Transport types used in 2021.
const (
	Local Type = 0 // a worker on this node
	TCP   Type = 1 // a TCP connection; the value is "ip:port" text
)

// MaxType is the largest valid address type.
const MaxType Type = 127

// Address is one hop of a route: a transport type and an opaque value, in
// practice UTF-8 text (a worker name, a hex string, or "ip:port" for TCP).
//
// Address is a small comparable value, usable as a map key; the zero value
// is the local address with an empty name.
type Address struct {
	Type  Type
	Value string
}

// LocalAddress returns the type-0 address with the given name.
func LocalAddress(name string) Address { return Address{Type: Local, Value: name} }

// TCPAddress returns the type-1 address for hostport, e.g. "127.0.0.1:4000".
func TCPAddress(hostport string) Address { return Address{Type: TCP, Value: hostport} }

// IsLocal reports whether a is a local (type 0) address.
func (a Address) IsLocal() bool { return a.Type == Local }

// String returns the canonical text form "TYPE#VALUE", e.g. "0#echo_service".
// A value that is not valid UTF-8 prints as "Invalid UTF-8", as Rust does.
func (a Address) String() string {
	v := a.Value
	if !utf8.ValidString(v) {
		v = "Invalid UTF-8"
	}
	return strconv.Itoa(int(a.Type)) + "#" + v
}

// ParseAddress parses the text form of one address: "TYPE#VALUE", or a bare
// VALUE meaning type 0. Surrounding white space is trimmed. It returns a
// *ParseError for an empty input, more than one '#', or a type that is not a
// decimal number in 0..127. An empty value after '#' is accepted, as in Rust.
func ParseAddress(s string) (Address, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Address{}, &ParseError{Input: s, Err: ErrEmpty}
	}
	typ, val, found := strings.Cut(t, "#")
	if !found {
		return Address{Type: Local, Value: t}, nil
	}
	if strings.Contains(val, "#") {
		return Address{}, &ParseError{Input: s, Err: ErrSyntax}
	}
	n, err := strconv.ParseUint(typ, 10, 8)
	if err != nil || n > uint64(MaxType) {
		return Address{}, &ParseError{Input: s, Err: ErrType}
	}
	return Address{Type: Type(n), Value: val}, nil
}

// MustParseAddress is like ParseAddress but panics on error. It is meant for
// constants in programs and tests, never for input.
func MustParseAddress(s string) Address {
	a, err := ParseAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}

// normalizeTCP turns the Elixir binary form of an IPv4 TCP address
// (0x00 ‖ 4 address bytes ‖ port u16 little-endian, protocol.md §2.4) into
// the "ip:port" text that Rust nodes and ockamhub use. A text value never
// starts with 0x00 or 0x01, so the forms cannot be confused. The Elixir IPv6
// forms never round-tripped between Elixir nodes and are rejected.
func normalizeTCP(v []byte) (string, bool, error) {
	if len(v) == 0 || (v[0] != 0x00 && v[0] != 0x01) {
		return "", false, nil
	}
	if v[0] == 0x01 || len(v) != 7 {
		return "", true, ErrAddress
	}
	ip := netip.AddrFrom4([4]byte{v[1], v[2], v[3], v[4]})
	port := uint16(v[5]) | uint16(v[6])<<8
	return netip.AddrPortFrom(ip, port).String(), true, nil
}
