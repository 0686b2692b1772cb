package routing

import (
	"errors"
	"fmt"
)

// Sentinel errors, compared with [errors.Is].
var (
	// ErrEmpty means an address or route text was empty.
	ErrEmpty = errors.New("routing: empty input")
	// ErrSyntax means an address text had more than one '#'.
	ErrSyntax = errors.New("routing: more than one '#' separator")
	// ErrType means an address type is not a decimal number in 0..127.
	// (The wire carries the type in one byte that the Elixir nodes read as a
	// varint, so types of 128 and above are never valid.)
	ErrType = errors.New("routing: invalid address type")
	// ErrUTF8 means an address value is not valid UTF-8.
	ErrUTF8 = errors.New("routing: address is not valid UTF-8")
	// ErrTooLarge means an encoded message exceeds the limit given to the
	// encoder.
	ErrTooLarge = errors.New("routing: message too large")
	// ErrAddress means a transport-specific address value is malformed
	// (for example an Elixir binary TCP address in an unsupported form).
	ErrAddress = errors.New("routing: malformed address value")
)

// ParseError reports a route or address text that did not parse.
type ParseError struct {
	Input string // the text that failed (one address, or the whole route)
	Err   error  // ErrEmpty, ErrSyntax or ErrType
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("routing: parsing %q: %s", e.Input, trim(e.Err))
}

// Unwrap returns the underlying sentinel.
func (e *ParseError) Unwrap() error { return e.Err }

// DecodeError reports a TransportMessage that did not decode: which field,
// at which byte offset of the body, and why. Err wraps a bare sentinel
// (bare.ErrShort, bare.ErrLength, bare.ErrOverflow) or one of this package's.
type DecodeError struct {
	Field  string
	Offset int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("routing: decoding %s at offset %d: %s", e.Field, e.Offset, trim(e.Err))
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

func trim(err error) string {
	s := err.Error()
	for _, p := range []string{"routing: ", "bare: "} {
		if len(s) > len(p) && s[:len(p)] == p {
			return s[len(p):]
		}
	}
	return s
}
