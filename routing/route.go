package routing

import "strings"

// Route is a sequence of addresses; the first element is the next hop.
//
// Methods never modify the receiver: they return new routes that share no
// backing array with it, so routes may be passed between goroutines freely.
// The zero value is the empty route.
type Route []Address

// NewRoute returns a route of the given addresses.
func NewRoute(addrs ...Address) Route { return append(Route(nil), addrs...) }

// ParseRoute parses the text form of a route: addresses joined by "=>", with
// optional white space around each (protocol.md §3.2). An empty input is an
// error, and so is an empty piece ("a=>" or "a=>=>b"): unlike Rust, which
// accepts them as empty local addresses, we treat them as typos.
func ParseRoute(s string) (Route, error) {
	if strings.TrimSpace(s) == "" {
		return nil, &ParseError{Input: s, Err: ErrEmpty}
	}
	parts := strings.Split(s, "=>")
	r := make(Route, 0, len(parts))
	for _, p := range parts {
		a, err := ParseAddress(p)
		if err != nil {
			return nil, err
		}
		r = append(r, a)
	}
	return r, nil
}

// MustParseRoute is like ParseRoute but panics on error. It is meant for
// constants in programs and tests, never for input.
func MustParseRoute(s string) Route {
	r, err := ParseRoute(s)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the canonical text form, addresses joined by " => ".
func (r Route) String() string {
	var b strings.Builder
	for i, a := range r {
		if i > 0 {
			b.WriteString(" => ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// Next returns the first address (the next hop) and whether there is one.
func (r Route) Next() (Address, bool) {
	if len(r) == 0 {
		return Address{}, false
	}
	return r[0], true
}

// Step returns the route without its first address (Rust's step()).
func (r Route) Step() Route {
	if len(r) == 0 {
		return nil
	}
	return append(Route(nil), r[1:]...)
}

// Recipient returns the last address: the final destination of the route.
func (r Route) Recipient() (Address, bool) {
	if len(r) == 0 {
		return Address{}, false
	}
	return r[len(r)-1], true
}

// Prepend returns a new route with addrs in front of r.
func (r Route) Prepend(addrs ...Address) Route {
	out := make(Route, 0, len(addrs)+len(r))
	out = append(out, addrs...)
	return append(out, r...)
}

// Append returns a new route with addrs after r.
func (r Route) Append(addrs ...Address) Route {
	out := make(Route, 0, len(r)+len(addrs))
	out = append(out, r...)
	return append(out, addrs...)
}

// Equal reports whether r and o hold the same addresses in the same order.
func (r Route) Equal(o Route) bool {
	if len(r) != len(o) {
		return false
	}
	for i := range r {
		if r[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of r that shares no memory with it: its addresses'
// values are copied too, so that keeping the clone does not keep alive the
// buffer a decoded route was read from.
func (r Route) Clone() Route {
	if r == nil {
		return nil
	}
	out := make(Route, len(r))
	for i, a := range r {
		out[i] = Address{Type: a.Type, Value: strings.Clone(a.Value)}
	}
	return out
}
