package bare

import (
	"errors"
	"fmt"
)

// Sentinel errors, wrapped by [*DecodeError] and compared with [errors.Is].
var (
	// ErrShort means the input ended before the value did.
	ErrShort = errors.New("bare: unexpected end of input")
	// ErrOverflow means a uint did not fit in 64 bits, or a value did not fit
	// the Go type it was decoded into.
	ErrOverflow = errors.New("bare: integer overflow")
	// ErrLength means a length or count exceeds the bytes that remain.
	ErrLength = errors.New("bare: length exceeds input")
	// ErrInvalid means a value is well-framed but not valid for its type
	// (a bool other than 0 or 1, an optional tag other than 0 or 1, an
	// unknown union variant, a string that is not UTF-8).
	ErrInvalid = errors.New("bare: invalid value")
	// ErrUnsupported means a Go type has no BARE mapping (channels, funcs,
	// interfaces, complex numbers...).
	ErrUnsupported = errors.New("bare: unsupported type")
)

// DecodeError reports where and why decoding failed. Offset counts bytes from
// the start of the input given to the [Reader].
type DecodeError struct {
	Field  string // what was being read, e.g. "string length"
	Offset int    // byte offset of the value that failed
	Err    error  // one of the sentinels above
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("bare: decoding %s at offset %d: %v", e.Field, e.Offset, trimPrefix(e.Err))
}

// Unwrap returns the underlying sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// trimPrefix avoids "bare: ... bare: ..." stutter in messages.
func trimPrefix(err error) string {
	s := err.Error()
	if len(s) > 6 && s[:6] == "bare: " {
		return s[6:]
	}
	return s
}
