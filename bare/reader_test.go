package bare_test

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
)

func TestUintVectors(t *testing.T) {
	segs := readVectors(t, "bare-uvarint.hex")
	if len(segs) != 9 {
		t.Fatalf("bare-uvarint.hex: got %d segments, want 9", len(segs))
	}
	for _, s := range segs {
		t.Run(s.name, func(t *testing.T) {
			n, err := strconv.ParseUint(strings.TrimPrefix(s.name, "uvarint "), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := bare.AppendUint(nil, n); !bytes.Equal(got, s.data) {
				t.Errorf("AppendUint(%d) = % x, want % x", n, got, s.data)
			}
			if got := bare.UintLen(n); got != len(s.data) {
				t.Errorf("UintLen(%d) = %d, want %d", n, got, len(s.data))
			}
			r := bare.NewReader(s.data)
			got, err := r.Uint("n")
			if err != nil || got != n {
				t.Errorf("Reader.Uint(% x) = %d, %v; want %d, nil", s.data, got, err, n)
			}
			if r.Offset() != len(s.data) || r.Len() != 0 {
				t.Errorf("after Uint: Offset %d, Len %d; want %d, 0", r.Offset(), r.Len(), len(s.data))
			}
			// The value layer encodes bare.Uint and Go uint the same way.
			for _, v := range []any{bare.Uint(n), uint(n)} {
				if got, err := bare.Marshal(v); err != nil || !bytes.Equal(got, s.data) {
					t.Errorf("Marshal(%T(%d)) = % x, %v; want % x", v, n, got, err, s.data)
				}
			}
		})
	}
}

func TestReaderUint(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantLen int   // bytes consumed
		wantErr error // sentinel
	}{
		{"zero", "00", 0, 1, nil},
		{"non-minimal zero", "80 00", 0, 2, nil},
		{"non-minimal 127", "ff 80 00", 127, 3, nil},
		{"ten-byte zero", "80 80 80 80 80 80 80 80 80 00", 0, 10, nil},
		{"max uint64", "ff ff ff ff ff ff ff ff ff 01", math.MaxUint64, 10, nil},
		{"trailing bytes kept", "01 02 03", 1, 1, nil},
		{"2^64", "80 80 80 80 80 80 80 80 80 02", 0, 0, bare.ErrOverflow},
		{"eleven bytes", "80 80 80 80 80 80 80 80 80 80 00", 0, 0, bare.ErrOverflow},
		{"eleven bytes of ff", "ff ff ff ff ff ff ff ff ff ff 01", 0, 0, bare.ErrOverflow},
		{"empty", "", 0, 0, bare.ErrShort},
		{"truncated", "80", 0, 0, bare.ErrShort},
		{"truncated long", "ff ff ff", 0, 0, bare.ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two bytes in front check that offsets count from the input start.
			in := append([]byte{0xaa, 0xbb}, unhex(t, tt.in)...)
			r := bare.NewReader(in)
			if _, err := r.U16("pad"); err != nil {
				t.Fatal(err)
			}
			got, err := r.Uint("count")
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("Uint = %d, %v; want %d, nil", got, err, tt.want)
				}
				if r.Offset() != 2+tt.wantLen {
					t.Errorf("Offset = %d, want %d", r.Offset(), 2+tt.wantLen)
				}
				return
			}
			checkDecodeError(t, err, tt.wantErr, "count", 2)
			if r.Offset() != 2 {
				t.Errorf("after error Offset = %d, want 2 (unchanged)", r.Offset())
			}
		})
	}
}

// checkDecodeError checks that err is a *DecodeError for field at offset
// wrapping sentinel.
func checkDecodeError(t *testing.T, err, sentinel error, field string, offset int) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	de, ok := errors.AsType[*bare.DecodeError](err)
	if !ok {
		t.Fatalf("err = %T (%v), want *bare.DecodeError", err, err)
	}
	if de.Field != field || de.Offset != offset {
		t.Errorf("DecodeError{Field: %q, Offset: %d}, want {%q, %d} (%v)", de.Field, de.Offset, field, offset, err)
	}
}

func TestReaderInt(t *testing.T) {
	tests := []struct {
		v    int64
		want string
	}{
		{0, "00"}, {-1, "01"}, {1, "02"}, {-64, "7f"}, {63, "7e"}, {64, "80 01"}, {-65, "81 01"},
		{math.MaxInt64, "fe ff ff ff ff ff ff ff ff 01"},
		{math.MinInt64, "ff ff ff ff ff ff ff ff ff 01"},
	}
	for _, tt := range tests {
		want := unhex(t, tt.want)
		if got := bare.AppendInt(nil, tt.v); !bytes.Equal(got, want) {
			t.Errorf("AppendInt(%d) = % x, want % x", tt.v, got, want)
		}
		if got, err := bare.NewReader(want).Int("i"); err != nil || got != tt.v {
			t.Errorf("Int(% x) = %d, %v; want %d", want, got, err, tt.v)
		}
		for _, v := range []any{bare.Int(tt.v), int(tt.v)} {
			if got, err := bare.Marshal(v); err != nil || !bytes.Equal(got, want) {
				t.Errorf("Marshal(%T(%d)) = % x, %v; want % x", v, tt.v, got, err, want)
			}
		}
	}
}

// TestReaderErrors checks each Reader method's failure: the sentinel, the
// field and offset in the *DecodeError, and that the cursor stays put.
func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string // after two bytes of padding
		read    func(r *bare.Reader) error
		wantErr error
	}{
		{"U8 empty", "", func(r *bare.Reader) error { _, err := r.U8("f"); return err }, bare.ErrShort},
		{"U16 short", "01", func(r *bare.Reader) error { _, err := r.U16("f"); return err }, bare.ErrShort},
		{"U32 short", "01 02 03", func(r *bare.Reader) error { _, err := r.U32("f"); return err }, bare.ErrShort},
		{"U64 short", "01 02 03 04 05 06 07", func(r *bare.Reader) error { _, err := r.U64("f"); return err }, bare.ErrShort},
		{"F32 short", "01", func(r *bare.Reader) error { _, err := r.F32("f"); return err }, bare.ErrShort},
		{"F64 short", "01", func(r *bare.Reader) error { _, err := r.F64("f"); return err }, bare.ErrShort},
		{"Int overflow", "80 80 80 80 80 80 80 80 80 80 01", func(r *bare.Reader) error { _, err := r.Int("f"); return err }, bare.ErrOverflow},
		{"Bool 02", "02", func(r *bare.Reader) error { _, err := r.Bool("f"); return err }, bare.ErrInvalid},
		{"Bool ff", "ff", func(r *bare.Reader) error { _, err := r.Bool("f"); return err }, bare.ErrInvalid},
		{"Fixed short", "01 02", func(r *bare.Reader) error { _, err := r.Fixed("f", 3); return err }, bare.ErrShort},
		{"Fixed negative", "01 02", func(r *bare.Reader) error { _, err := r.Fixed("f", -1); return err }, bare.ErrShort},
		{"Length exceeds", "03 01 02", func(r *bare.Reader) error { _, err := r.Length("f", 1); return err }, bare.ErrLength},
		{"Length min size", "02 00 00 00 00 00 00 00", func(r *bare.Reader) error { _, err := r.Length("f", 4); return err }, bare.ErrLength},
		{"Length 2^60", "80 80 80 80 80 80 80 80 10", func(r *bare.Reader) error { _, err := r.Length("f", 0); return err }, bare.ErrLength},
		{"Data exceeds", "05 01 02", func(r *bare.Reader) error { _, err := r.Data("f"); return err }, bare.ErrLength},
		{"Data no length", "", func(r *bare.Reader) error { _, err := r.Data("f"); return err }, bare.ErrShort},
		{"String not UTF-8", "02 ff fe", func(r *bare.Reader) error { _, err := r.String("f"); return err }, bare.ErrInvalid},
		{"String surrogate", "03 ed a0 80", func(r *bare.Reader) error { _, err := r.String("f"); return err }, bare.ErrInvalid},
		{"String exceeds", "04 61", func(r *bare.Reader) error { _, err := r.String("f"); return err }, bare.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bare.NewReader(append([]byte{0, 0}, unhex(t, tt.in)...))
			if _, err := r.Fixed("pad", 2); err != nil {
				t.Fatal(err)
			}
			checkDecodeError(t, tt.read(r), tt.wantErr, "f", 2)
			if r.Offset() != 2 {
				t.Errorf("after error Offset = %d, want 2 (unchanged)", r.Offset())
			}
		})
	}
}

func TestReaderPrimitives(t *testing.T) {
	in := unhex(t, "01 ff 34 12 78 56 34 12 08 07 06 05 04 03 02 01 00 00 80 3f 00 00 00 00 00 00 f0 3f 02 68 69 03 01 02 03 aa bb")
	r := bare.NewReader(in)
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
		}
	}
	b, err := r.Bool("b")
	check("Bool", b, true, err)
	u8, err := r.U8("u8")
	check("U8", u8, uint8(0xff), err)
	u16, err := r.U16("u16")
	check("U16", u16, uint16(0x1234), err)
	u32, err := r.U32("u32")
	check("U32", u32, uint32(0x12345678), err)
	u64, err := r.U64("u64")
	check("U64", u64, uint64(0x0102030405060708), err)
	f32, err := r.F32("f32")
	check("F32", f32, float32(1), err)
	f64, err := r.F64("f64")
	check("F64", f64, float64(1), err)
	s, err := r.String("s")
	check("String", s, "hi", err)
	d, err := r.Data("d")
	check("Data", string(d), "\x01\x02\x03", err)
	if got := r.Rest(); !bytes.Equal(got, []byte{0xaa, 0xbb}) || r.Len() != 2 || r.Offset() != len(in)-2 {
		t.Errorf("Rest = % x, Len %d, Offset %d; want aa bb, 2, %d", got, r.Len(), r.Offset(), len(in)-2)
	}
	// The zero Reader reads from empty input.
	var z bare.Reader
	if _, err := z.U8("z"); !errors.Is(err, bare.ErrShort) {
		t.Errorf("zero Reader U8: %v, want ErrShort", err)
	}
}
