package bare_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/ockamhub/ockamhub/bare"
)

// fuzzMsg is the rich type FuzzUnmarshal decodes into. It has no floats, so
// that reflect.DeepEqual (NaN != NaN) can compare round trips.
type fuzzMsg struct {
	Version uint8
	Flags   uint16
	N       int32
	Big     int64
	U       uint
	I       int
	VU      bare.Uint
	VI      bare.Int
	OK      bool
	Name    string
	Data    []byte
	Key     [4]byte
	Opt     *fuzzInner
	Names   []string
	Items   []fuzzInner
	Meta    map[string]uint32
	Tags    map[uint8][]byte
	Inner   fuzzInner
	Tree    *fuzzTree
	Union   SecureChannelListenerMessage
	Custom  []ptrMarshaler
}

type fuzzInner struct {
	Type  uint8
	Value []byte
	Opt   *string
	Arr   [2]int16
}

type fuzzTree struct {
	Label string
	Kids  []fuzzTree
	Next  *fuzzTree
}

func fuzzSeeds(t testing.TB) [][]byte {
	full := fuzzMsg{
		Version: 1, Flags: 0xbeef, N: -5, Big: math.MaxInt64, U: 300, I: -300, VU: 1 << 40, VI: -1 << 40, OK: true,
		Name: "Hello you over there!", Data: []byte{0, 1, 2}, Key: [4]byte{1, 2, 3, 4},
		Opt:    &fuzzInner{Type: 1, Value: []byte("127.0.0.1:4000"), Opt: ptr("x"), Arr: [2]int16{-1, 1}},
		Names:  []string{"echo_service", "app", ""},
		Items:  []fuzzInner{{Type: 0, Value: []byte("echo_service")}, {}},
		Meta:   map[string]uint32{"a": 1, "b": 2},
		Tags:   map[uint8][]byte{0: nil, 1: {1}},
		Inner:  fuzzInner{Value: []byte{0xff}},
		Tree:   &fuzzTree{Label: "r", Kids: []fuzzTree{{Label: "k"}}, Next: &fuzzTree{}},
		Union:  SecureChannelListenerMessage{Variant: CreateResponderChannel{Payload: []byte("m1")}},
		Custom: []ptrMarshaler{{X: 1}},
	}
	zero := fuzzMsg{Union: SecureChannelListenerMessage{Variant: CreateResponderChannel{}}}
	var seeds [][]byte
	for _, v := range []fuzzMsg{full, zero} {
		b, err := bare.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzUnmarshal decodes arbitrary bytes into fuzzMsg. It must never panic;
// when decoding succeeds, the value must encode, decode back to an equal
// value, and re-encode to the same (canonical, no longer) bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add(vector(f, "sc-m1-listener-message-enum.hex", "listener-message"))
	f.Add(vector(f, "sc-m1-listener-message-struct.hex", "listener-message"))
	f.Add(vector(f, "frame-echo-request.hex", ""))
	f.Fuzz(func(t *testing.T, data []byte) {
		var x fuzzMsg
		r := bare.NewReader(data)
		if err := r.Unmarshal(&x); err != nil {
			de, ok := errors.AsType[*bare.DecodeError](err)
			if !ok {
				t.Fatalf("error %T (%v), want *bare.DecodeError", err, err)
			}
			if de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("offset %d outside the input (%d bytes): %v", de.Offset, len(data), err)
			}
			return
		}
		consumed := r.Offset()
		b, err := bare.Marshal(x)
		if err != nil {
			t.Fatalf("Marshal of a decoded value: %v\n%#v", err, x)
		}
		if len(b) > consumed {
			t.Fatalf("re-encoding is %d bytes, longer than the %d bytes decoded", len(b), consumed)
		}
		var y fuzzMsg
		if err := bare.Unmarshal(b, &y); err != nil {
			t.Fatalf("Unmarshal(Marshal(x)): %v\n% x", err, b)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("decode(encode(x)) != x\n x = %#v\n y = %#v", x, y)
		}
		if b2, err := bare.Marshal(y); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not canonical:\n% x\n% x (%v)", b, b2, err)
		}
	})
}

// FuzzReader drives the primitive Reader: each byte of ops picks a method
// (low nibble) and, for Length and Fixed, a size (high nibble). Whatever the
// input, a call either consumes exactly its value, which re-encodes to the
// bytes read (or, for a non-minimal uint, decodes from them), or fails with a
// *DecodeError at the current offset and leaves the cursor there.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x1b, 0x4c, 0x0d},
		[]byte("\x2a\x01\x34\x12\x78\x56\x34\x12\x08\x07\x06\x05\x04\x03\x02\x01\x00\x00\x80\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x05hello\x02hi\x03\x00\x01\x02\x01\x02\x03\x04\x05"))
	for _, s := range readVectors(f, "bare-uvarint.hex") {
		f.Add([]byte{0x00, 0x00, 0x00}, s.data)
	}
	f.Add([]byte{0x09, 0x0a}, []byte{0x02, 0xff, 0xfe, 0x02, 0xc3, 0xa9})
	f.Add([]byte{0x00, 0x01}, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00})
	f.Add([]byte{0x1b}, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10})
	f.Fuzz(func(t *testing.T, ops, data []byte) {
		r := bare.NewReader(data)
		for _, op := range ops {
			before := r.Offset()
			if before+r.Len() != len(data) || !bytes.Equal(r.Rest(), data[before:]) {
				t.Fatalf("Offset %d + Len %d != %d", before, r.Len(), len(data))
			}
			size := int(op >> 4)
			var reencoded []byte // nil: no exact re-encoding to compare
			var err error
			switch op & 0x0f {
			case 0:
				var v uint64
				if v, err = r.Uint("f"); err == nil {
					checkUvarint(t, data[before:r.Offset()], v)
				}
			case 1:
				var v int64
				if v, err = r.Int("f"); err == nil {
					u, _ := binary.Uvarint(data[before:r.Offset()])
					if want := int64(u>>1) ^ -int64(u&1); v != want {
						t.Fatalf("Int = %d, want %d", v, want)
					}
				}
			case 2:
				var v uint8
				v, err = r.U8("f")
				reencoded = bare.AppendU8(nil, v)
			case 3:
				var v uint16
				v, err = r.U16("f")
				reencoded = bare.AppendU16(nil, v)
			case 4:
				var v uint32
				v, err = r.U32("f")
				reencoded = bare.AppendU32(nil, v)
			case 5:
				var v uint64
				v, err = r.U64("f")
				reencoded = bare.AppendU64(nil, v)
			case 6:
				var v float32
				v, err = r.F32("f")
				reencoded = bare.AppendF32(nil, v)
			case 7:
				var v float64
				v, err = r.F64("f")
				reencoded = bare.AppendF64(nil, v)
			case 8:
				var v bool
				v, err = r.Bool("f")
				reencoded = bare.AppendBool(nil, v)
			case 9:
				var v []byte
				if v, err = r.Data("f"); err == nil {
					n, k := binary.Uvarint(data[before:])
					if uint64(len(v)) != n || !bytes.Equal(v, data[before+k:r.Offset()]) {
						t.Fatalf("Data = % x, want %d bytes after the length", v, n)
					}
				}
			case 10:
				var v string
				if v, err = r.String("f"); err == nil && !utf8.ValidString(v) {
					t.Fatalf("String returned invalid UTF-8 %q", v)
				}
			case 11:
				var n int
				if n, err = r.Length("f", size); err == nil {
					if n < 0 || n*max(size, 1) > r.Len() {
						t.Fatalf("Length(%d) = %d with %d bytes left", size, n, r.Len())
					}
				}
			case 12:
				var v []byte
				if v, err = r.Fixed("f", size); err == nil && len(v) != size {
					t.Fatalf("Fixed(%d) returned %d bytes", size, len(v))
				}
			default:
				// A value decode from the middle of the stream.
				var v struct {
					S string
					P *uint16
					L []uint8
				}
				if err = r.Unmarshal(&v); err != nil {
					if !errors.Is(err, bare.ErrShort) && !errors.Is(err, bare.ErrLength) &&
						!errors.Is(err, bare.ErrInvalid) && !errors.Is(err, bare.ErrOverflow) {
						t.Fatalf("Unmarshal: unexpected error %v", err)
					}
					return // the cursor is unspecified after a value error
				}
				continue
			}
			if err != nil {
				de, ok := errors.AsType[*bare.DecodeError](err)
				if !ok || de.Field != "f" || de.Offset != before {
					t.Fatalf("op %#02x: err %v, want *DecodeError{Field: f, Offset: %d}", op, err, before)
				}
				if r.Offset() != before {
					t.Fatalf("op %#02x failed but moved the cursor from %d to %d", op, before, r.Offset())
				}
				if !errors.Is(err, bare.ErrShort) && !errors.Is(err, bare.ErrLength) &&
					!errors.Is(err, bare.ErrInvalid) && !errors.Is(err, bare.ErrOverflow) {
					t.Fatalf("op %#02x: unexpected sentinel in %v", op, err)
				}
				continue
			}
			if reencoded != nil && !bytes.Equal(reencoded, data[before:r.Offset()]) {
				t.Fatalf("op %#02x read % x, re-encodes as % x", op, data[before:r.Offset()], reencoded)
			}
		}
	})
}

// checkUvarint checks that raw, a LEB128 encoding the Reader accepted, holds
// v, and that AppendUint writes the same bytes whenever raw is minimal.
func checkUvarint(t *testing.T, raw []byte, v uint64) {
	t.Helper()
	enc := bare.AppendUint(nil, v)
	minimal := len(raw) == 1 || raw[len(raw)-1] != 0
	if minimal && !bytes.Equal(enc, raw) {
		t.Fatalf("Uint read % x as %d, which encodes as % x", raw, v, enc)
	}
	if len(enc) > len(raw) {
		t.Fatalf("Uint read %d from % x, shorter than its minimal encoding % x", v, raw, enc)
	}
}
