package bare

import (
	"encoding/binary"
	"math"
	"unicode/utf8"
)

// Reader is a bounds-checked cursor over a BARE-encoded byte slice.
//
// Each method reads one value and advances; on failure it returns a
// [*DecodeError] carrying the field name given by the caller and the offset of
// the value, and leaves the cursor where the value started. Methods never
// panic and never allocate more than the input holds: Data and String return
// sub-slices or copies bounded by the remaining input.
//
// The zero value reads from an empty input. A Reader is not safe for
// concurrent use.
type Reader struct {
	buf  []byte
	off  int
	base int // offset of buf[0] in the caller's numbering
}

// NewReader returns a Reader over b. Offsets in errors count from b[0].
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Offset returns the number of bytes consumed so far.
func (r *Reader) Offset() int { return r.base + r.off }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Rest returns the unread bytes without copying and without advancing.
func (r *Reader) Rest() []byte { return r.buf[r.off:] }

func (r *Reader) fail(field string, at int, err error) error {
	return &DecodeError{Field: field, Offset: r.base + at, Err: err}
}

// Uint reads a BARE uint (LEB128). Non-minimal encodings are accepted;
// values over 64 bits are rejected with ErrOverflow.
func (r *Reader) Uint(field string) (uint64, error) {
	v, n := binary.Uvarint(r.buf[r.off:])
	switch {
	case n == 0:
		return 0, r.fail(field, r.off, ErrShort)
	case n < 0:
		return 0, r.fail(field, r.off, ErrOverflow)
	}
	r.off += n
	return v, nil
}

// Int reads a BARE int (zig-zag LEB128).
func (r *Reader) Int(field string) (int64, error) {
	u, err := r.Uint(field)
	if err != nil {
		return 0, err
	}
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x, nil
}

// Length reads a uint that counts items of at least minSize bytes each and
// checks that the remaining input can hold them. It is what every count and
// length in a decoder should go through, so that a count of 2^60 fails before
// anything is allocated.
func (r *Reader) Length(field string, minSize int) (int, error) {
	start := r.off
	v, err := r.Uint(field)
	if err != nil {
		return 0, err
	}
	if minSize < 1 {
		minSize = 1
	}
	if v > uint64(r.Len()/minSize) {
		r.off = start
		return 0, r.fail(field, start, ErrLength)
	}
	return int(v), nil
}

// U8 reads one raw byte.
func (r *Reader) U8(field string) (uint8, error) {
	if r.Len() < 1 {
		return 0, r.fail(field, r.off, ErrShort)
	}
	v := r.buf[r.off]
	r.off++
	return v, nil
}

// Fixed reads exactly n raw bytes and returns them without copying.
func (r *Reader) Fixed(field string, n int) ([]byte, error) {
	if n < 0 || r.Len() < n {
		return nil, r.fail(field, r.off, ErrShort)
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b, nil
}

// U16 reads a little-endian u16.
func (r *Reader) U16(field string) (uint16, error) {
	b, err := r.Fixed(field, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// U32 reads a little-endian u32.
func (r *Reader) U32(field string) (uint32, error) {
	b, err := r.Fixed(field, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// U64 reads a little-endian u64.
func (r *Reader) U64(field string) (uint64, error) {
	b, err := r.Fixed(field, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// F32 reads a little-endian IEEE 754 f32.
func (r *Reader) F32(field string) (float32, error) {
	v, err := r.U32(field)
	return math.Float32frombits(v), err
}

// F64 reads a little-endian IEEE 754 f64.
func (r *Reader) F64(field string) (float64, error) {
	v, err := r.U64(field)
	return math.Float64frombits(v), err
}

// Bool reads one byte that must be 0x00 or 0x01.
func (r *Reader) Bool(field string) (bool, error) {
	start := r.off
	v, err := r.U8(field)
	if err != nil {
		return false, err
	}
	switch v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	r.off = start
	return false, r.fail(field, start, ErrInvalid)
}

// Data reads BARE data (uint length ‖ bytes) and returns the bytes without
// copying; the result aliases the input.
func (r *Reader) Data(field string) ([]byte, error) {
	start := r.off
	n, err := r.Length(field, 1)
	if err != nil {
		return nil, err
	}
	b, err := r.Fixed(field, n)
	if err != nil {
		r.off = start
		return nil, err
	}
	return b, nil
}

// String reads a BARE string and checks that it is valid UTF-8.
func (r *Reader) String(field string) (string, error) {
	start := r.off
	b, err := r.Data(field)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		r.off = start
		return "", r.fail(field, start, ErrInvalid)
	}
	return string(b), nil
}
