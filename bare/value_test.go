package bare_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
)

// roundTrip marshals v, checks the bytes if want is not nil, unmarshals into
// a new value of v's type and checks it equals v.
func roundTrip(t *testing.T, v any, want []byte) []byte {
	t.Helper()
	b, err := bare.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%#v): %v", v, err)
	}
	if want != nil && !bytes.Equal(b, want) {
		t.Fatalf("Marshal(%#v) = % x, want % x", v, b, want)
	}
	// AppendMarshal appends the same bytes after a prefix.
	if ab, err := bare.AppendMarshal([]byte{0xee}, v); err != nil || !bytes.Equal(ab, append([]byte{0xee}, b...)) {
		t.Fatalf("AppendMarshal = % x, %v; want ee ‖ % x", ab, err, b)
	}
	typ := reflect.TypeOf(v)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem() // Marshal encodes what a top-level pointer points to
	}
	p := reflect.New(typ)
	if err := bare.Unmarshal(b, p.Interface()); err != nil {
		t.Fatalf("Unmarshal(% x) into %v: %v", b, typ, err)
	}
	wantV := reflect.ValueOf(v)
	if wantV.Kind() == reflect.Pointer {
		wantV = wantV.Elem()
	}
	if got := p.Elem().Interface(); !reflect.DeepEqual(got, wantV.Interface()) {
		t.Fatalf("round trip of % x:\n got %#v\nwant %#v", b, got, wantV.Interface())
	}
	return b
}

func TestHelloString(t *testing.T) {
	const s = "Hello you over there!"
	want := append([]byte{0x15}, s...)
	got := roundTrip(t, s, want)
	// In the echo frame the routing layer wraps it as data: 16 ‖ 15 ‖ text,
	// which ends the frame.
	frame := vector(t, "frame-echo-request.hex", "")
	field := bare.AppendData(nil, got)
	if !bytes.HasSuffix(frame, field) || field[0] != 0x16 {
		t.Errorf("frame-echo-request.hex does not end with the payload field % x", field)
	}
}

type address struct { // Rust ockam_core::Address { tt: u8, inner: Vec<u8> }
	Type  uint8
	Value []byte
}

// createResponderChannelMessage mirrors the Rust struct used from
// build-trust/ockam 7ecef1e: { payload: Vec<u8>, callback_address: Option<Address> }.
type createResponderChannelMessage struct {
	Payload         []byte
	CallbackAddress *address
}

func TestListenerMessageVectors(t *testing.T) {
	enumMsg := vector(t, "sc-m1-listener-message-enum.hex", "listener-message")
	enumField := vector(t, "sc-m1-listener-message-enum.hex", "payload-field")
	structMsg := vector(t, "sc-m1-listener-message-struct.hex", "listener-message")
	structField := vector(t, "sc-m1-listener-message-struct.hex", "payload-field")
	m1 := enumMsg[2:]
	if len(m1) != 32 || !bytes.Equal(structMsg[1:33], m1) {
		t.Fatalf("the two vectors disagree on M1")
	}

	t.Run("enum", func(t *testing.T) {
		msg := SecureChannelListenerMessage{Variant: CreateResponderChannel{Payload: m1}}
		b := roundTrip(t, msg, enumMsg)
		if got := bare.AppendData(nil, b); !bytes.Equal(got, enumField) {
			t.Errorf("payload field = % x, want % x", got, enumField)
		}
		// Variant 1 does not exist: ErrInvalid at the union's offset, here
		// after a one-byte field.
		var in struct {
			Pad uint8
			Msg SecureChannelListenerMessage
		}
		err := bare.Unmarshal([]byte{0xaa, 0x01, 0x00}, &in)
		checkDecodeError(t, err, bare.ErrInvalid, "struct { Pad uint8; Msg bare_test.SecureChannelListenerMessage }.Msg", 1)
		// A truncated payload inside the variant: the offset is the payload's.
		err = bare.Unmarshal(append([]byte{0xaa}, enumMsg[:10]...), &in)
		checkDecodeError(t, err, bare.ErrLength, "struct { Pad uint8; Msg bare_test.SecureChannelListenerMessage }.Msg.bare_test.CreateResponderChannel.Payload", 2)
	})

	t.Run("struct None", func(t *testing.T) {
		b := roundTrip(t, createResponderChannelMessage{Payload: m1}, structMsg)
		if got := bare.AppendData(nil, b); !bytes.Equal(got, structField) {
			t.Errorf("payload field = % x, want % x", got, structField)
		}
	})

	t.Run("struct Some", func(t *testing.T) {
		// protocol.md §10.4: with payload 00..1f and Some(0#cb) the
		// encoding ends 01 00 02 63 62.
		payload := make([]byte, 32)
		for i := range payload {
			payload[i] = byte(i)
		}
		msg := createResponderChannelMessage{Payload: payload, CallbackAddress: &address{Type: 0, Value: []byte("cb")}}
		want := append(append([]byte{0x20}, payload...), 0x01, 0x00, 0x02, 0x63, 0x62)
		roundTrip(t, msg, want)
	})
}

// Types for the encoding tables.
type (
	myByte   uint8
	myString string
	myFloat  float32
	pair     struct {
		A uint8
		B string
	}
	skipping struct {
		A       uint8
		hidden  int
		Skipped string `bare:"-"`
		D       bool
	}
	withOpt struct {
		P *uint8
		Q **string
	}
	empty struct{}
	// Embedded is embedded below; an exported embedded struct encodes as
	// a field, an unexported one is skipped.
	Embedded  struct{ X uint8 }
	embedding struct {
		Embedded
		pair
		C uint8
	}
)

func ptr[T any](v T) *T { return &v }

func TestMarshalBytes(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"bool false", false, "00"},
		{"bool true", true, "01"},
		{"int8", int8(-1), "ff"},
		{"int16", int16(-2), "fe ff"},
		{"int32", int32(1), "01 00 00 00"},
		{"int64", int64(-1), "ff ff ff ff ff ff ff ff"},
		{"uint8", uint8(0x80), "80"},
		{"uint16", uint16(0x1234), "34 12"},
		{"uint32", uint32(0x12345678), "78 56 34 12"},
		{"uint64", uint64(1), "01 00 00 00 00 00 00 00"},
		{"int is varint", int(-1), "01"},
		{"uint is varint", uint(300), "ac 02"},
		{"Int", bare.Int(-64), "7f"},
		{"Uint", bare.Uint(128), "80 01"},
		{"float32", float32(1), "00 00 80 3f"},
		{"float64", float64(-2), "00 00 00 00 00 00 00 c0"},
		{"named float32", myFloat(1), "00 00 80 3f"},
		{"string", "é", "02 c3 a9"},
		{"empty string", "", "00"},
		{"named string", myString("ab"), "02 61 62"},
		{"data", []byte{1, 2}, "02 01 02"},
		{"empty data", []byte(nil), "00"},
		{"named byte slice", []myByte{1, 2}, "02 01 02"},
		{"fixed bytes", [3]byte{1, 2, 3}, "01 02 03"},
		{"fixed named bytes", [2]myByte{4, 5}, "04 05"},
		{"fixed empty", [0]byte{}, ""},
		{"slice", []uint16{1, 2}, "02 01 00 02 00"},
		{"slice of strings", []string{"a", ""}, "02 01 61 00"},
		{"array", [2]uint16{1, 2}, "01 00 02 00"},
		{"array of structs", [2]pair{{1, "a"}, {2, ""}}, "01 01 61 02 00"},
		{"slice of structs", []pair{{1, "a"}}, "01 01 01 61"},
		{"map sorted by key bytes", map[string]uint8{"b": 2, "a": 1, "aa": 3}, "03 01 61 01 01 62 02 02 61 61 03"},
		{"map uint keys", map[uint16]bool{256: true, 1: false}, "02 00 01 01 01 00 00"},
		{"struct", pair{7, "x"}, "07 01 78"},
		{"skipped fields", skipping{A: 1, D: true}, "01 01"},
		{"optional None", withOpt{}, "00 00"},
		{"optional Some", withOpt{P: ptr(uint8(5)), Q: ptr(ptr("z"))}, "01 05 01 01 01 7a"},
		{"optional Some(None)", withOpt{Q: new(*string)}, "00 01 00"},
		{"top-level pointer dereferenced", ptr(pair{7, "x"}), "07 01 78"},
		{"top-level optional via pointer to pointer", ptr(ptr(uint8(9))), "01 09"},
		{"top-level optional None", ptr((*uint8)(nil)), "00"},
		{"empty struct", empty{}, ""},
		{"embedded structs", embedding{Embedded: Embedded{X: 1}, C: 2}, "01 02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, tt.v, unhex(t, tt.want))
		})
	}
}

// richInner and rich cover every supported kind for round trips.
type richInner struct {
	ID   uint32
	Tags []string
	Opt  *richInner // recursive through an optional
}

type rich struct {
	B      bool
	I8     int8
	I16    int16
	I32    int32
	I64    int64
	U8     uint8
	U16    uint16
	U32    uint32
	U64    uint64
	I      int
	U      uint
	VI     bare.Int
	VU     bare.Uint
	F32    float32
	F64    float64
	S      string
	D      []byte
	Fixed  [4]byte
	Arr    [2]richInner
	Sl     []richInner
	Ss     [][]string
	M      map[string]uint32
	MK     map[pair][]byte
	Opt    *richInner
	None   *string
	Nested richInner
	Union  SecureChannelListenerMessage
	Val    valueMarshaler
	Ptr    ptrMarshaler
	hidden string
	Skip   []int `bare:"-"`
}

func fullRich() rich {
	return rich{
		B: true, I8: -8, I16: -16, I32: -32, I64: math.MinInt64, U8: 8, U16: 16, U32: 32, U64: math.MaxUint64,
		I: math.MinInt64, U: math.MaxUint64, VI: -1 << 40, VU: 1 << 50, F32: -1.5, F64: math.Inf(-1),
		S: "héllo", D: []byte{0, 1, 2}, Fixed: [4]byte{9, 8, 7, 6},
		Arr:    [2]richInner{{ID: 1}, {ID: 2, Tags: []string{"x"}}},
		Sl:     []richInner{{ID: 3, Opt: &richInner{ID: 4, Opt: &richInner{ID: 5}}}},
		Ss:     [][]string{{"a", "b"}, nil, {""}},
		M:      map[string]uint32{"one": 1, "two": 2, "": 0},
		MK:     map[pair][]byte{{1, "a"}: {1}, {1, "b"}: nil},
		Opt:    &richInner{ID: 6, Tags: []string{"t"}},
		Nested: richInner{ID: 7},
		Union:  SecureChannelListenerMessage{Variant: CreateResponderChannel{Payload: []byte("m1")}},
		Val:    valueMarshaler{X: 3},
		Ptr:    ptrMarshaler{X: 4},
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"zero rich", rich{Union: SecureChannelListenerMessage{Variant: CreateResponderChannel{}}}},
		{"full rich", fullRich()},
		{"pointer to rich", ptr(fullRich())},
		{"slice of rich", []rich{fullRich(), fullRich()}},
		{"map of slices", map[uint8][]pair{1: {{1, "a"}}, 2: nil}},
		{"map of optionals", map[string]*pair{"some": {1, "x"}, "none": nil}},
		{"nested maps", map[string]map[string]string{"a": {"b": "c"}}},
		{"array of optionals", [3]*uint8{nil, ptr(uint8(1)), nil}},
		{"big slice", bytes.Repeat([]byte{7}, 70000)},
		{"big count", make([]bool, 300)},
		{"float32 values", []float32{0, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(1))}},
		{"max ints", []int64{math.MinInt64, math.MaxInt64}},
		{"max Int", []bare.Int{math.MinInt64, math.MaxInt64}},
		{"max Uint", []bare.Uint{0, math.MaxUint64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, tt.v, nil)
		})
	}
}

// TestFloatBits checks that NaN payloads, including signalling NaNs, survive
// both directions bit for bit, as Rust's to_le_bytes/from_le_bytes keep them.
func TestFloatBits(t *testing.T) {
	const snan32 = 0x7f800001
	const snan64 = 0x7ff0000000000001
	f32 := math.Float32frombits(snan32)
	f64 := math.Float64frombits(snan64)
	type floats struct {
		A float32
		B float64
		C myFloat
	}
	want := []byte{0x01, 0x00, 0x80, 0x7f, 0x01, 0, 0, 0, 0, 0, 0xf0, 0x7f, 0x01, 0x00, 0x80, 0x7f}
	for _, v := range []any{floats{f32, f64, myFloat(f32)}, &floats{f32, f64, myFloat(f32)}} {
		b, err := bare.Marshal(v)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("Marshal(%T) = % x, %v; want % x", v, b, err, want)
		}
	}
	var got floats
	if err := bare.Unmarshal(want, &got); err != nil {
		t.Fatal(err)
	}
	if math.Float32bits(got.A) != snan32 || math.Float64bits(got.B) != snan64 || math.Float32bits(float32(got.C)) != snan32 {
		t.Errorf("decoded bits %#x %#x %#x, want %#x %#x %#x", math.Float32bits(got.A), math.Float64bits(got.B),
			math.Float32bits(float32(got.C)), snan32, snan64, snan32)
	}
}

// valueMarshaler has a value-receiver MarshalBARE; its custom encoding (a
// marker byte, then X as a uint) tells it apart from the struct's own.
type valueMarshaler struct{ X uint8 }

func (m valueMarshaler) MarshalBARE(b []byte) ([]byte, error) {
	return bare.AppendUint(append(b, 0xaa), uint64(m.X)), nil
}

func (m *valueMarshaler) UnmarshalBARE(r *bare.Reader) error {
	start := r.Offset()
	if tag, err := r.U8("marker"); err != nil {
		return err
	} else if tag != 0xaa {
		return &bare.DecodeError{Field: "marker", Offset: start, Err: bare.ErrInvalid}
	}
	x, err := r.Uint("x")
	if err != nil {
		return err
	}
	if x > math.MaxUint8 {
		return fmt.Errorf("x %d: %w", x, bare.ErrOverflow)
	}
	m.X = uint8(x)
	return nil
}

// ptrMarshaler has a pointer-receiver MarshalBARE.
type ptrMarshaler struct{ X uint8 }

func (m *ptrMarshaler) MarshalBARE(b []byte) ([]byte, error) {
	return append(b, 0xbb, m.X), nil
}

func (m *ptrMarshaler) UnmarshalBARE(r *bare.Reader) error {
	b, err := r.Fixed("ptr", 2)
	if err != nil {
		return err
	}
	if b[0] != 0xbb {
		return bare.ErrInvalid
	}
	m.X = b[1]
	return nil
}

// failingMarshaler fails to encode.
type failingMarshaler struct{}

var errFailing = errors.New("failing marshaler")

func (failingMarshaler) MarshalBARE(b []byte) ([]byte, error) { return b, errFailing }
func (*failingMarshaler) UnmarshalBARE(*bare.Reader) error    { return errFailing }

func TestMarshalerNesting(t *testing.T) {
	vm := valueMarshaler{X: 3}
	pm := ptrMarshaler{X: 4}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"value receiver, top level", vm, "aa 03"},
		{"value receiver, top-level pointer", &vm, "aa 03"},
		{"pointer receiver, top level (copied)", pm, "bb 04"},
		{"pointer receiver, top-level pointer", &pm, "bb 04"},
		{"in a struct", struct {
			V valueMarshaler
			P ptrMarshaler
		}{vm, pm}, "aa 03 bb 04"},
		{"in a slice", []ptrMarshaler{pm, {X: 5}}, "02 bb 04 bb 05"},
		{"in an array", [2]valueMarshaler{vm, {X: 200}}, "aa 03 aa c8 01"},
		{"in an optional", struct{ P *ptrMarshaler }{&pm}, "01 bb 04"},
		{"optional None", struct{ P *ptrMarshaler }{}, "00"},
		{"map key and value (not addressable)", map[valueMarshaler]ptrMarshaler{vm: pm}, "01 aa 03 bb 04"},
		{"deep", struct{ A [1][]map[string]*ptrMarshaler }{[1][]map[string]*ptrMarshaler{{{"k": &pm}}}}, "01 01 01 6b 01 bb 04"},
		{"union in a slice", []SecureChannelListenerMessage{{Variant: CreateResponderChannel{Payload: []byte{1}}}}, "01 00 01 01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roundTrip(t, tt.v, unhex(t, tt.want))
		})
	}

	t.Run("errors", func(t *testing.T) {
		_, err := bare.Marshal(struct{ F []failingMarshaler }{make([]failingMarshaler, 2)})
		ee, ok := errors.AsType[*bare.EncodeError](err)
		if !errors.Is(err, errFailing) || !ok || ee.Field != "struct { F []bare_test.failingMarshaler }.F[0]" {
			t.Errorf("Marshal: %v, want EncodeError at .F[0] wrapping errFailing", err)
		}
		var v struct{ F []failingMarshaler }
		err = bare.Unmarshal([]byte{0x01, 0x00}, &v)
		checkDecodeError(t, err, errFailing, "struct { F []bare_test.failingMarshaler }.F[0]", 1)
		// Errors that are not *DecodeError are wrapped at the value's offset.
		var pv [2]ptrMarshaler
		err = bare.Unmarshal([]byte{0xbb, 0x01, 0xcc, 0x02}, &pv)
		checkDecodeError(t, err, bare.ErrInvalid, "[2]bare_test.ptrMarshaler[1]", 2)
		// A *DecodeError from the Unmarshaler keeps its field and offset.
		var vv [2]valueMarshaler
		err = bare.Unmarshal([]byte{0xaa, 0x01, 0xab, 0x02}, &vv)
		checkDecodeError(t, err, bare.ErrInvalid, "[2]bare_test.valueMarshaler[1].marker", 2)
		err = bare.Unmarshal([]byte{0xaa, 0x01, 0xaa, 0x80, 0x02}, &vv)
		checkDecodeError(t, err, bare.ErrOverflow, "[2]bare_test.valueMarshaler[1]", 2)
	})
}

// Types that implement only one direction are rejected in both directions.
type onlyMarshaler struct{}

func (onlyMarshaler) MarshalBARE(b []byte) ([]byte, error) { return b, nil }

type onlyUnmarshaler struct{}

func (*onlyUnmarshaler) UnmarshalBARE(*bare.Reader) error { return nil }

// Recursive types.
type (
	tree struct {
		Name string
		Kids []tree
	}
	list struct {
		V    uint8
		Next *list
	}
	nest  []nest
	mutA  struct{ B *mutB }
	mutB  struct{ A []mutA }
	mapRe map[string]mapRe
)

func TestRecursiveTypes(t *testing.T) {
	roundTrip(t, tree{Name: "root", Kids: []tree{{Name: "a"}, {Name: "b", Kids: []tree{{Name: "c"}}}}},
		unhex(t, "04 72 6f 6f 74 02 01 61 00 01 62 01 01 63 00"))
	roundTrip(t, list{1, &list{2, &list{3, nil}}}, unhex(t, "01 01 02 01 03 00"))
	roundTrip(t, nest{nil, nest{nil}}, unhex(t, "02 00 01 00"))
	roundTrip(t, mutA{&mutB{[]mutA{{}, {&mutB{}}}}}, unhex(t, "01 02 00 01 00"))
	roundTrip(t, mutB{[]mutA{{&mutB{}}}}, unhex(t, "01 01 00"))
	roundTrip(t, mapRe{"a": mapRe{"b": nil}}, unhex(t, "01 01 61 01 01 62 00"))
}

func TestDepthLimit(t *testing.T) {
	deep := func(n int) []byte { return append(bytes.Repeat([]byte{0x01}, n), 0x00) }
	var v nest
	if err := bare.Unmarshal(deep(900), &v); err != nil {
		t.Fatalf("900 levels: %v", err)
	}
	if b, err := bare.Marshal(v); err != nil || !bytes.Equal(b, deep(900)) {
		t.Fatalf("Marshal of 900 levels: %v", err)
	}
	err := bare.Unmarshal(deep(1<<20), &v)
	if !errors.Is(err, bare.ErrDepth) {
		t.Fatalf("a million levels: %v, want ErrDepth", err)
	}
	if _, ok := errors.AsType[*bare.DecodeError](err); !ok {
		t.Errorf("err is %T, want *DecodeError", err)
	}
	var l list
	if err := bare.Unmarshal(append(bytes.Repeat([]byte{0x00, 0x01}, 5000), 0, 0), &l); !errors.Is(err, bare.ErrDepth) {
		t.Errorf("5000-long list: %v, want ErrDepth", err)
	}
	// A pointer cycle fails instead of recursing forever.
	cyc := &list{V: 1}
	cyc.Next = cyc
	if _, err := bare.Marshal(cyc); !errors.Is(err, bare.ErrDepth) {
		t.Errorf("Marshal of a cycle: %v, want ErrDepth", err)
	}
}

func TestUnmarshalTrailingBytes(t *testing.T) {
	var p pair
	if err := bare.Unmarshal(unhex(t, "07 01 78 ff ff"), &p); err != nil || p != (pair{7, "x"}) {
		t.Fatalf("Unmarshal = %v, %+v", err, p)
	}
	r := bare.NewReader(unhex(t, "07 01 78 ff ff"))
	if err := r.Unmarshal(&p); err != nil || r.Len() != 2 || r.Offset() != 3 {
		t.Fatalf("Reader.Unmarshal: %v, Len %d, Offset %d; want nil, 2, 3", err, r.Len(), r.Offset())
	}
}

func TestUnmarshalOverwrites(t *testing.T) {
	v := skipping{A: 1, hidden: 2, Skipped: "keep", D: true}
	if err := bare.Unmarshal([]byte{9, 0}, &v); err != nil {
		t.Fatal(err)
	}
	if want := (skipping{A: 9, hidden: 2, Skipped: "keep", D: false}); v != want {
		t.Errorf("got %+v, want %+v", v, want)
	}
	// Slices, maps and optionals are replaced, not merged; empty ones are nil.
	w := struct {
		S []uint8
		M map[uint8]uint8
		P *uint8
		D []byte
	}{[]uint8{1, 2, 3}, map[uint8]uint8{1: 1}, ptr(uint8(1)), []byte{1}}
	old := w.P
	if err := bare.Unmarshal([]byte{1, 5, 1, 2, 2, 1, 7, 0}, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(w.S, []uint8{5}) || !reflect.DeepEqual(w.M, map[uint8]uint8{2: 2}) || *w.P != 7 || w.P == old || w.D != nil || *old != 1 {
		t.Errorf("got %+v", w)
	}
	// The result does not alias the input.
	in := []byte{0x02, 'h', 'i'}
	var b []byte
	var s struct{ D []byte }
	if err := bare.Unmarshal(in, &b); err != nil {
		t.Fatal(err)
	}
	if err := bare.Unmarshal(in, &s); err != nil {
		t.Fatal(err)
	}
	in[1] = 'X'
	if string(b) != "hi" || string(s.D) != "hi" {
		t.Errorf("decoded bytes alias the input: %q %q", b, s.D)
	}
}

// TestTruncated decodes every proper prefix of valid encodings: each must
// fail with ErrShort or ErrLength at an offset inside the prefix, not panic.
func TestTruncated(t *testing.T) {
	values := []any{
		fullRich(),
		tree{Name: "root", Kids: []tree{{Name: "a"}, {Name: "b", Kids: []tree{{Name: "c"}}}}},
		SecureChannelListenerMessage{Variant: CreateResponderChannel{Payload: []byte("0123456789")}},
		map[string][]uint64{"k": {1, 2}},
		[3]*float64{nil, ptr(1.5), nil},
		"Hello you over there!",
		[]byte("data"),
	}
	for _, v := range values {
		t.Run(fmt.Sprintf("%T", v), func(t *testing.T) {
			full, err := bare.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			for n := range len(full) {
				p := reflect.New(reflect.TypeOf(v))
				err := bare.Unmarshal(full[:n:n], p.Interface())
				if !errors.Is(err, bare.ErrShort) && !errors.Is(err, bare.ErrLength) {
					t.Fatalf("prefix %d/%d: %v, want ErrShort or ErrLength", n, len(full), err)
				}
				de, ok := errors.AsType[*bare.DecodeError](err)
				if !ok || de.Offset < 0 || de.Offset > n {
					t.Fatalf("prefix %d/%d: %v, want a *DecodeError inside the prefix", n, len(full), err)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	huge := bare.AppendUint(nil, 1<<60)
	tests := []struct {
		name    string
		in      []byte
		into    any
		wantErr error
		field   string
		offset  int
	}{
		{"string not UTF-8", []byte{0x02, 0xc3, 0x28}, new(string), bare.ErrInvalid, "string", 0},
		{"string field not UTF-8", []byte{0x07, 0x01, 0xff}, new(pair), bare.ErrInvalid, "bare_test.pair.B", 1},
		{"named string not UTF-8", []byte{0x01, 0x80}, new(myString), bare.ErrInvalid, "bare_test.myString", 0},
		{"bool 02", []byte{0x02}, new(bool), bare.ErrInvalid, "bool", 0},
		{"option tag 02", []byte{0x02, 0x05}, new(withOpt), bare.ErrInvalid, "bare_test.withOpt.P", 0},
		{"nested option tag 02", []byte{0x00, 0x01, 0x02}, new(withOpt), bare.ErrInvalid, "bare_test.withOpt.Q", 2},
		{"option Some without value", []byte{0x01}, new(withOpt), bare.ErrShort, "bare_test.withOpt.P", 1},
		{"count 2^60 strings", append(huge, 0, 0, 0), new([]string), bare.ErrLength, "[]string", 0},
		{"count 2^60 data", append(huge, 0, 0, 0), new([]byte), bare.ErrLength, "[]uint8", 0},
		{"count 2^60 map", append(huge, 0, 0, 0), new(map[string]string), bare.ErrLength, "map[string]string", 0},
		{"count 2^60 empty structs", append(huge, 0, 0, 0), new([]empty), bare.ErrLength, "[]bare_test.empty", 0},
		{"count 2^60 zero arrays", append(huge, 0, 0, 0), new([][0]byte), bare.ErrLength, "[][0]uint8", 0},
		{"count beyond u64 min size", []byte{0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9}, new([]uint64), bare.ErrLength, "[]uint64", 0},
		{"count overflow", unhex(t, "80 80 80 80 80 80 80 80 80 80 01"), new([]string), bare.ErrOverflow, "[]string", 0},
		{"element error path", []byte{0x02, 0x00, 0x01, 0xff}, new([]string), bare.ErrInvalid, "[]string[1]", 2},
		{"map duplicate key", []byte{0x02, 0x01, 0x61, 0x01, 0x01, 0x61, 0x02}, new(map[string]uint8), bare.ErrInvalid, "map[string]uint8[key 1]", 4},
		{"map value error", []byte{0x01, 0x01, 0x61, 0x02}, new(map[string]bool), bare.ErrInvalid, "map[string]bool[0]", 3},
		{"map key error", []byte{0x01, 0x01, 0xff}, new(map[string]bool), bare.ErrInvalid, "map[string]bool[key 0]", 1},
		{"fixed array short", []byte{1, 2}, new([3]byte), bare.ErrShort, "[3]uint8", 0},
		{"struct array element", []byte{1, 0, 2, 1}, new([2]pair), bare.ErrLength, "[2]bare_test.pair[1].B", 3},
		{"uint overflow", unhex(t, "ff ff ff ff ff ff ff ff ff ff 01"), new(uint), bare.ErrOverflow, "uint", 0},
		{"empty input", nil, new(rich), bare.ErrShort, "bare_test.rich.B", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bare.Unmarshal(tt.in, tt.into)
			checkDecodeError(t, err, tt.wantErr, tt.field, tt.offset)
			// The same through a Reader that has consumed a prefix: offsets
			// shift, fields stay.
			r := bare.NewReader(append([]byte{0xee}, tt.in...))
			if _, err := r.U8("pad"); err != nil {
				t.Fatal(err)
			}
			checkDecodeError(t, r.Unmarshal(tt.into), tt.wantErr, tt.field, tt.offset+1)
		})
	}
}

func TestHugeCountAllocs(t *testing.T) {
	in := append(bare.AppendUint(nil, 1<<60), "abcdefgh"...)
	allocs := testing.AllocsPerRun(100, func() {
		var v []string
		if err := bare.Unmarshal(in, &v); !errors.Is(err, bare.ErrLength) {
			t.Fatalf("got %v, want ErrLength", err)
		}
	})
	if allocs > 3 {
		t.Errorf("Unmarshal of a 2^60 count: %v allocations, want at most 3 (the error)", allocs)
	}
}

// TestLargeElementPrealloc checks that a count the input can hold, of
// elements whose Go size dwarfs their encoded size, is not allocated up front.
func TestLargeElementPrealloc(t *testing.T) {
	type wide struct {
		B   bool
		pad [4096]byte
	}
	const n = 60000 // 60000 × 4 KiB = 245 MB if trusted
	in := append(bare.AppendUint(nil, n), bytes.Repeat([]byte{0x02}, n)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var v []wide
	err := bare.Unmarshal(in, &v)
	runtime.ReadMemStats(&after)
	checkDecodeError(t, err, bare.ErrInvalid, "[]bare_test.wide[0].B", 3)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("allocated %d bytes for a failed decode of %d input bytes", got, len(in))
	}
	// Valid input of the same shape still decodes, growing as it goes.
	in = append(bare.AppendUint(nil, 100), bytes.Repeat([]byte{0x01}, 100)...)
	if err := bare.Unmarshal(in, &v); err != nil || len(v) != 100 || !v[99].B {
		t.Errorf("valid: %v, len %d", err, len(v))
	}
}

func TestZeroSizeElements(t *testing.T) {
	// Elements that encode to no bytes cannot be bounded by the input they
	// need, so their count is bounded by the bytes that remain (a sane
	// limit, no allocation): a Marshal of []empty{{}, {}} (02) decodes only
	// with two more bytes behind it.
	if b, err := bare.Marshal([]empty{{}, {}}); err != nil || !bytes.Equal(b, []byte{0x02}) {
		t.Errorf("Marshal([]empty{{}, {}}) = % x, %v; want 02", b, err)
	}
	var v []empty
	// The count of zero-size elements is bounded by the remaining input.
	if err := bare.Unmarshal([]byte{0x05}, &v); !errors.Is(err, bare.ErrLength) {
		t.Errorf("5 empty structs in 0 bytes: %v, want ErrLength", err)
	}
	if err := bare.Unmarshal([]byte{0x03, 0, 0, 0}, &v); err != nil || len(v) != 3 {
		t.Errorf("3 empty structs: %v, len %d", err, len(v))
	}
	var m map[empty]empty
	if err := bare.Unmarshal([]byte{0x02, 0, 0}, &m); !errors.Is(err, bare.ErrInvalid) {
		t.Errorf("map of two empty keys: %v, want ErrInvalid (duplicate)", err)
	}
}

func TestUnsupported(t *testing.T) {
	type withChan struct {
		A uint8
		C chan int
	}
	type outer struct{ In []withChan }
	type withAny struct{ X any }
	type badTag struct {
		A uint8 `bare:"varint"`
	}
	tests := []struct {
		name string
		v    any
		msg  string // substring of the error
	}{
		{"chan", make(chan int), "chan int"},
		{"func", func() {}, "func()"},
		{"complex", complex64(1), "complex64"},
		{"uintptr", uintptr(1), "uintptr"},
		{"field", withChan{}, "at bare_test.withChan.C"},
		{"nested field", outer{}, "at bare_test.outer.In.C"},
		{"interface field", withAny{}, "interface {}"},
		{"map of any", map[string]any{}, "interface {}"},
		{"unknown tag", badTag{}, `unknown struct tag bare:"varint"`},
		{"only Marshaler", onlyMarshaler{}, "implements Marshaler but not Unmarshaler"},
		{"only Unmarshaler", onlyUnmarshaler{}, "implements Unmarshaler but not Marshaler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // the second time from the cache
				_, err := bare.Marshal(tt.v)
				if !errors.Is(err, bare.ErrUnsupported) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("Marshal: %v, want ErrUnsupported mentioning %q", err, tt.msg)
				}
				p := reflect.New(reflect.TypeOf(tt.v))
				err = bare.Unmarshal([]byte{0, 0, 0, 0}, p.Interface())
				if !errors.Is(err, bare.ErrUnsupported) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("Unmarshal: %v, want ErrUnsupported mentioning %q", err, tt.msg)
				}
			}
		})
	}
}

func TestBadArguments(t *testing.T) {
	var s string
	for _, v := range []any{nil, s, (*string)(nil), (*pair)(nil), pair{}} {
		if err := bare.Unmarshal([]byte{0}, v); !errors.Is(err, bare.ErrUnsupported) {
			t.Errorf("Unmarshal(%#v): %v, want ErrUnsupported", v, err)
		}
	}
	for _, v := range []any{nil, (*string)(nil), (*pair)(nil)} {
		if b, err := bare.Marshal(v); !errors.Is(err, bare.ErrUnsupported) || b != nil {
			t.Errorf("Marshal(%#v) = %v, %v; want nil, ErrUnsupported", v, b, err)
		}
	}
	// Invalid UTF-8 is refused on encode, top level or nested.
	for _, v := range []any{"\xff", myString("\xc3"), pair{1, "a\x80"}, map[string]int{"\xff": 1}} {
		_, err := bare.Marshal(v)
		if _, ok := errors.AsType[*bare.EncodeError](err); !ok || !errors.Is(err, bare.ErrInvalid) {
			t.Errorf("Marshal(%q): %v, want *EncodeError wrapping ErrInvalid", v, err)
		}
		prefix := []byte{1, 2}
		if b, err := bare.AppendMarshal(prefix, v); err == nil || !bytes.Equal(b, prefix) {
			t.Errorf("AppendMarshal(%q) = % x, %v; want the prefix unchanged and an error", v, b, err)
		}
	}
	// A nil interface Marshaler.
	var nilM struct{ M bare.Marshaler }
	if _, err := bare.Marshal(nilM); !errors.Is(err, bare.ErrUnsupported) {
		t.Errorf("Marshal of a nil Marshaler field: %v, want ErrUnsupported", err)
	}
}

func TestMapDeterministic(t *testing.T) {
	m := make(map[uint32]string)
	for i := range 200 {
		m[uint32(i*7919)] = fmt.Sprint(i)
	}
	first, err := bare.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if b, _ := bare.Marshal(m); !bytes.Equal(b, first) {
			t.Fatal("map encodings differ between calls")
		}
	}
	// Distinct Go keys that encode alike cannot be written.
	type key struct {
		A      uint8
		hidden int
	}
	if _, err := bare.Marshal(map[key]bool{{1, 1}: true, {1, 2}: false}); !errors.Is(err, bare.ErrInvalid) {
		t.Errorf("keys with equal encodings: %v, want ErrInvalid", err)
	}
}

// TestConcurrent compiles and uses fresh types from many goroutines at once
// (run with -race).
func TestConcurrent(t *testing.T) {
	type fresh1 struct {
		A []tree
		B map[string]*list
	}
	type fresh2 struct {
		X fresh1
		Y [2]fresh1
	}
	v := fresh2{X: fresh1{A: []tree{{Name: "a"}}, B: map[string]*list{"l": {V: 1}}}}
	want, err := bare.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b, err := bare.Marshal(v)
				if err != nil || !bytes.Equal(b, want) {
					t.Errorf("Marshal = % x, %v", b, err)
					return
				}
				var got fresh2
				if err := bare.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, v) {
					t.Errorf("Unmarshal = %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDecodeErrorMessage(t *testing.T) {
	var p pair
	err := bare.Unmarshal([]byte{0x07, 0x05, 'a'}, &p)
	const want = "bare: decoding bare_test.pair.B at offset 1: length exceeds input"
	if err == nil || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	_, err = bare.Marshal(pair{1, "\xff"})
	const wantEnc = "bare: encoding bare_test.pair.B: invalid value: string is not UTF-8"
	if err == nil || err.Error() != wantEnc {
		t.Errorf("got %q, want %q", err, wantEnc)
	}
}
