package bare

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Marshaler is implemented by types that encode themselves. MarshalBARE
// appends the encoding of the receiver to b and returns the extended slice; it
// must not modify b[:len(b)] and must not retain b.
//
// [Marshal] uses MarshalBARE wherever a value of the type appears (top level,
// struct field, slice or array element, map key or value, inside an optional),
// whether the method has a value or a pointer receiver. A non-addressable
// value whose method has a pointer receiver is copied first. A pointer type
// *T is always an optional; it is T's methods that count. A type that
// implements Marshaler must also implement [Unmarshaler] (and the other way
// round), so that the two directions cannot silently disagree; Marshal and
// Unmarshal return [ErrUnsupported] otherwise. Beware that embedding a type
// that has these methods promotes them to the outer struct.
//
// # Unions and Rust enums
//
// A BARE union, like a serde_bare Rust enum, is the uint index of the variant
// (in declaration order, from 0) followed by the variant's fields as a struct
// (a unit variant is the index alone, a newtype variant the index and its one
// value).
// Express one as a Go type with both methods: MarshalBARE appends the index
// with [AppendUint] and then the variant with [AppendMarshal]; UnmarshalBARE
// reads the index with [Reader.Uint], switches on it, and decodes the variant
// with [Reader.Unmarshal], returning an error wrapping [ErrInvalid] for an
// unknown index. The Rust enum
//
//	enum SecureChannelListenerMessage {
//	    CreateResponderChannel { payload: Vec<u8> },
//	}
//
// encodes as 00 ‖ uint(len(payload)) ‖ payload; see the union example.
type Marshaler interface {
	MarshalBARE(b []byte) ([]byte, error)
}

// Unmarshaler is implemented by types that decode themselves. UnmarshalBARE
// reads exactly one value from r and advances past it. It must copy any bytes
// it keeps: [Reader.Data], [Reader.Fixed] and [Reader.Rest] alias the input.
//
// An error that is not a [*DecodeError] is wrapped in one carrying the offset
// at which the value started, so [Unmarshal] still reports where decoding
// failed. Nesting is bounded per [Reader.Unmarshal] call: an Unmarshaler that
// recurses into its own type through Reader.Unmarshal must bound its depth
// itself.
//
// See [Marshaler] for where the method is looked up and for unions.
type Unmarshaler interface {
	UnmarshalBARE(r *Reader) error
}

// Uint is a uint64 that encodes as a BARE uint (LEB128), whatever the
// platform. It mirrors serde_bare's Uint wrapper. A plain uint64 encodes as
// eight fixed bytes, like a Rust u64.
type Uint uint64

// Int is an int64 that encodes as a BARE int (zig-zag LEB128), whatever the
// platform. It mirrors serde_bare's Int wrapper. A plain int64 encodes as
// eight fixed bytes, like a Rust i64.
type Int int64

// ErrDepth means a value of a recursive type nested deeper than the limit
// (1000 levels of recursion), or a pointer cycle was met while encoding.
// Nesting of non-recursive types is bounded by the type itself and not
// counted.
var ErrDepth = errors.New("bare: nesting too deep")

// EncodeError reports which value [Marshal] could not encode and why.
type EncodeError struct {
	Field string // path of the value from the top, e.g. "pkg.Msg.Items[2].Name"
	Err   error  // ErrInvalid (a string that is not UTF-8...), ErrDepth, or a Marshaler's error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("bare: encoding %s: %v", e.Field, trimPrefix(e.Err))
}

// Unwrap returns the underlying error.
func (e *EncodeError) Unwrap() error { return e.Err }

// typeError reports a Go type (or argument) that has no BARE mapping. It is
// returned before any byte is encoded or decoded and wraps ErrUnsupported.
type typeError struct {
	t    reflect.Type
	path string // where t sits inside the top-level type
	why  string
}

func (e *typeError) Error() string {
	s := "bare: unsupported type " + fmt.Sprint(e.t)
	if e.path != "" {
		s += " at " + e.path
	}
	if e.why != "" {
		s += ": " + e.why
	}
	return s
}

func (e *typeError) Unwrap() error { return ErrUnsupported }

const (
	// maxDepth bounds recursion through recursive types (type L []L, a list
	// node pointing to the next) so that hostile input, or a pointer cycle,
	// cannot exhaust the goroutine stack, which is fatal rather than a panic.
	maxDepth = 1000
	// preallocBytes caps what a decoder allocates up front for a slice or
	// map. Counts are already bounded by the input (Reader.Length), but the Go
	// size of an element can exceed its minimum encoded size many times over;
	// beyond this cap the slice grows as elements actually decode.
	preallocBytes = 64 << 10
	// poolBufMax is the largest buffer Marshal keeps for reuse.
	poolBufMax = 64 << 10
)

var (
	marshalerType   = reflect.TypeFor[Marshaler]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
	intType         = reflect.TypeFor[Int]()
	uintType        = reflect.TypeFor[Uint]()
	errNotUTF8      = fmt.Errorf("%w: string is not UTF-8", ErrInvalid)
	bufPool         = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// Marshal returns the BARE encoding of v. Go types map to BARE the way
// serde_bare maps Rust types (protocol.md §4), so that Go and Rust workers
// exchange the same bytes:
//
//	Go                   BARE                                Rust (serde_bare)
//	string               string: uint length ‖ UTF-8         String, &str
//	[]byte               data: uint length ‖ bytes           Vec<u8>
//	[N]byte, [N]T        N values, no length                 [u8; N], [T; N]
//	bool                 one byte, 0x00 or 0x01              bool
//	int8..int64          fixed width, little endian          i8..i64
//	uint8..uint64        fixed width, little endian          u8..u64
//	int, Int             int: zig-zag LEB128                 serde_bare::Int
//	uint, Uint           uint: LEB128                        serde_bare::Uint
//	float32, float64     IEEE 754, little endian             f32, f64
//	[]T                  uint count ‖ values                 Vec<T>
//	map[K]V              uint count ‖ (K ‖ V)...             HashMap<K, V>
//	struct               its fields in declaration order     struct
//	*T                   optional: 0x00, or 0x01 ‖ T         Option<T>
//	Marshaler            what MarshalBARE appends            enums, custom Serialize
//
// Go's int and uint are varints, like serde_bare's Int and Uint wrappers;
// for a Rust i64 or u64 use int64 or uint64 (fixed eight bytes), or [Int] and
// [Uint] to say "varint" explicitly. Struct fields that are unexported
// (including embedded structs of unexported type) or tagged `bare:"-"` are
// skipped; any other bare tag is an error. An embedded struct encodes as a
// field, which is byte for byte the same as its fields inlined.
//
// If v is a non-nil pointer, Marshal encodes the value it points to, exactly
// as Unmarshal(data, v) decodes it: Marshal(x) and Marshal(&x) give the same
// bytes, like serde_bare's to_vec(&x). Nested pointers are optionals; to
// encode a top-level optional, pass a pointer to the pointer. A nil v or nil
// pointer is an error.
//
// Strings must be valid UTF-8 (serde_bare cannot decode anything else); an
// invalid one yields an [*EncodeError] wrapping [ErrInvalid]. Map entries are
// written sorted by their encoded keys, so the output is deterministic. Types
// without a mapping (chan, func, complex, uintptr, unsafe.Pointer, interfaces
// other than Marshaler) yield an error wrapping [ErrUnsupported].
//
// Marshal is safe for concurrent use. Per-type encoders are compiled once and
// cached.
func Marshal(v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return nil, &EncodeError{Field: "string", Err: errNotUTF8}
		}
		return AppendString(make([]byte, 0, UintLen(uint64(len(x)))+len(x)), x), nil
	case []byte:
		return AppendData(make([]byte, 0, UintLen(uint64(len(x)))+len(x)), x), nil
	}
	bp := bufPool.Get().(*[]byte)
	b, err := appendValue((*bp)[:0], v)
	var out []byte
	if err == nil {
		out = bytes.Clone(b)
	}
	if cap(b) <= poolBufMax {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	return out, err
}

// AppendMarshal appends the BARE encoding of v to b and returns the extended
// slice. It encodes exactly as [Marshal]. On error it returns b unchanged in
// length (bytes past len(b) in its array may have been overwritten).
func AppendMarshal(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return b, &EncodeError{Field: "string", Err: errNotUTF8}
		}
		return AppendString(b, x), nil
	case []byte:
		return AppendData(b, x), nil
	}
	out, err := appendValue(b, v)
	if err != nil {
		return b, err
	}
	return out, nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return b, &typeError{why: "Marshal of nil"}
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return b, &typeError{t: rv.Type(), why: "Marshal of a nil pointer"}
		}
		rv = rv.Elem()
	}
	t := rv.Type()
	enc, err := encoderOf(t)
	if err != nil {
		return b, err
	}
	b, err = enc(b, rv, 0)
	if err != nil {
		return b, prefixErr(err, t.String())
	}
	return b, nil
}

// Unmarshal decodes one BARE value from the start of data into the value that
// v points to. v must be a non-nil pointer; it decodes as the mapping in
// [Marshal] describes.
//
// Trailing bytes after the value are ignored, as serde_bare's from_slice
// ignores them (protocol.md §4); use [Reader.Unmarshal] and [Reader.Len] to
// check for them.
//
// Bad input yields a [*DecodeError] whose Offset counts from data[0] and
// whose Field is the path of the value, e.g. "pkg.Msg.Items[2].Name"; it wraps
// [ErrShort], [ErrLength], [ErrOverflow] (a Go int or uint too small for the
// value), [ErrInvalid] (bad bool or optional tag, invalid UTF-8, a duplicate
// map key, an unknown union variant) or [ErrDepth]. On error, *v may be
// partly overwritten.
//
// Every field that is decoded is overwritten, never merged: slices and maps
// are fresh (an empty one decodes as nil), a Some allocates a fresh value.
// Skipped fields (unexported or tagged `bare:"-"`) are left as they were. The
// result never aliases data, except for what an [Unmarshaler] chooses to keep.
// Unmarshal never panics on bad input. It allocates in proportion to the
// input it decodes (times the ratio of a type's Go size to its minimum
// encoded size), never to the lengths and counts the input claims: a count
// of n elements needs n times their minimum encoded size in the remaining
// input. Elements that encode to no bytes at all (struct{}, [0]T) are
// allowed one per remaining input byte, which bounds the work; so a []struct{}
// that Marshal wrote may not decode without bytes following it.
//
// Unmarshal is safe for concurrent use.
func Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *string:
		if p != nil {
			r := Reader{buf: data}
			s, err := r.String("string")
			if err != nil {
				return err
			}
			*p = s
			return nil
		}
	case *[]byte:
		if p != nil {
			r := Reader{buf: data}
			b, err := r.Data("[]uint8")
			if err != nil {
				return err
			}
			*p = cloneBytes(b)
			return nil
		}
	}
	return NewReader(data).Unmarshal(v)
}

// Unmarshal decodes one value into the value that v points to, as the package
// function [Unmarshal] does, and advances past it. Error offsets use r's
// numbering. After an error the position of r is unspecified.
//
// It is the way for an [Unmarshaler] to decode a nested value.
func (r *Reader) Unmarshal(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &typeError{t: reflect.TypeOf(v), why: "Unmarshal needs a non-nil pointer"}
	}
	ev := rv.Elem()
	t := ev.Type()
	dec, err := decoderOf(t)
	if err != nil {
		return err
	}
	if err := dec(r, ev, 0); err != nil {
		return prefixErr(err, t.String())
	}
	return nil
}

// cloneBytes copies b; an empty b becomes nil, as in the reflective decoder.
func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// joinPath appends the path sub to p: "Msg" + "Items" = "Msg.Items",
// "Msg" + "[2]" = "Msg[2]".
func joinPath(p, sub string) string {
	switch {
	case sub == "":
		return p
	case p == "":
		return sub
	case sub[0] == '[':
		return p + sub
	}
	return p + "." + sub
}

// prefixErr prepends the path element p to the location an error reports.
// Errors are built bottom-up, so only the failure path pays for the path.
// Every error it changes was created by this package for this call.
func prefixErr(err error, p string) error {
	switch e := err.(type) {
	case *DecodeError:
		e.Field = joinPath(p, e.Field)
	case *EncodeError:
		e.Field = joinPath(p, e.Field)
	case *typeError:
		e.path = joinPath(p, e.path)
	}
	return err
}

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// hasMarshaler reports whether values of t encode through MarshalBARE.
// Pointer types are optionals; their element's methods count instead.
func hasMarshaler(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return false
	case reflect.Interface:
		return t.Implements(marshalerType)
	}
	return t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType)
}

// hasUnmarshaler reports whether values of t decode through UnmarshalBARE.
func hasUnmarshaler(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer:
		return false
	case reflect.Interface:
		return t.Implements(unmarshalerType)
	}
	return reflect.PointerTo(t).Implements(unmarshalerType)
}

// isPlainByte reports whether t is a byte kind without custom methods, so
// that []t and [N]t can be copied as raw bytes.
func isPlainByte(t reflect.Type) bool {
	return t.Kind() == reflect.Uint8 && !hasMarshaler(t) && !hasUnmarshaler(t)
}

// ---- encoders

// encodeFunc appends the encoding of v. v need not be addressable. depth
// counts recursions through recursive types.
type encodeFunc func(b []byte, v reflect.Value, depth int) ([]byte, error)

// encCache maps reflect.Type to a compiled encodeFunc or a cached *typeError.
var encCache sync.Map

func encoderOf(t reflect.Type) (encodeFunc, error) {
	if e, ok := encCache.Load(t); ok {
		switch e := e.(type) {
		case encodeFunc:
			return e, nil
		case *typeError:
			return nil, e
		}
	}
	c := encCompiler{}
	enc, err := c.compile(t)
	if err != nil {
		if te, ok := err.(*typeError); ok && te.path != "" {
			prefixErr(te, t.String())
		}
		encCache.Store(t, err)
		return nil, err
	}
	// Publish only now: an encoder built during this compilation may call,
	// through recursion, one whose function was not yet set.
	for typ, n := range c {
		encCache.LoadOrStore(typ, n.enc)
	}
	return enc, nil
}

type encNode struct {
	enc   encodeFunc
	ready bool
}

// encCompiler holds the types of one compilation; an entry that is not ready
// is an ancestor of the type being compiled, that is, a recursive reference.
type encCompiler map[reflect.Type]*encNode

func (c encCompiler) compile(t reflect.Type) (encodeFunc, error) {
	if e, ok := encCache.Load(t); ok {
		if f, ok := e.(encodeFunc); ok {
			return f, nil
		}
	}
	if n, ok := c[t]; ok {
		if n.ready {
			return n.enc, nil
		}
		// A recursive reference: n.enc is set once t is compiled. Every cycle
		// of calls goes through here, so counting here bounds the recursion.
		return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
			if depth >= maxDepth {
				return b, &EncodeError{Err: ErrDepth}
			}
			return n.enc(b, v, depth+1)
		}, nil
	}
	n := &encNode{}
	c[t] = n
	enc, err := c.build(t)
	if err != nil {
		return nil, err
	}
	n.enc, n.ready = enc, true
	return enc, nil
}

func (c encCompiler) build(t reflect.Type) (encodeFunc, error) {
	if hasMarshaler(t) {
		if !hasUnmarshaler(t) && t.Kind() != reflect.Interface {
			return nil, &typeError{t: t, why: "implements Marshaler but not Unmarshaler"}
		}
		return encodeMarshaler(t), nil
	}
	if hasUnmarshaler(t) {
		return nil, &typeError{t: t, why: "implements Unmarshaler but not Marshaler"}
	}
	switch t {
	case intType:
		return encodeVarint, nil
	case uintType:
		return encodeUvarint, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendBool(b, v.Bool()), nil
		}, nil
	case reflect.Int:
		return encodeVarint, nil
	case reflect.Uint:
		return encodeUvarint, nil
	case reflect.Int8:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return append(b, byte(v.Int())), nil
		}, nil
	case reflect.Int16:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU16(b, uint16(v.Int())), nil
		}, nil
	case reflect.Int32:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU32(b, uint32(v.Int())), nil
		}, nil
	case reflect.Int64:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU64(b, uint64(v.Int())), nil
		}, nil
	case reflect.Uint8:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return append(b, byte(v.Uint())), nil
		}, nil
	case reflect.Uint16:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU16(b, uint16(v.Uint())), nil
		}, nil
	case reflect.Uint32:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU32(b, uint32(v.Uint())), nil
		}, nil
	case reflect.Uint64:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU64(b, v.Uint()), nil
		}, nil
	case reflect.Float32:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendU32(b, float32Bits(v)), nil
		}, nil
	case reflect.Float64:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			return AppendF64(b, v.Float()), nil
		}, nil
	case reflect.String:
		return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
			s := v.String()
			if !utf8.ValidString(s) {
				return b, &EncodeError{Err: errNotUTF8}
			}
			return AppendString(b, s), nil
		}, nil
	case reflect.Slice:
		if isPlainByte(t.Elem()) {
			return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
				return AppendData(b, v.Bytes()), nil
			}, nil
		}
		elem, err := c.compile(t.Elem())
		if err != nil {
			return nil, err
		}
		return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
			n := v.Len()
			b = AppendUint(b, uint64(n))
			for i := range n {
				var err error
				if b, err = elem(b, v.Index(i), depth); err != nil {
					return b, prefixErr(err, index(i))
				}
			}
			return b, nil
		}, nil
	case reflect.Array:
		if isPlainByte(t.Elem()) {
			return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
				if v.CanAddr() {
					return append(b, v.Bytes()...), nil
				}
				for i := range v.Len() {
					b = append(b, byte(v.Index(i).Uint()))
				}
				return b, nil
			}, nil
		}
		elem, err := c.compile(t.Elem())
		if err != nil {
			return nil, err
		}
		return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
			for i := range v.Len() {
				var err error
				if b, err = elem(b, v.Index(i), depth); err != nil {
					return b, prefixErr(err, index(i))
				}
			}
			return b, nil
		}, nil
	case reflect.Map:
		key, err := c.compile(t.Key())
		if err != nil {
			return nil, prefixErr(err, "[key]")
		}
		val, err := c.compile(t.Elem())
		if err != nil {
			return nil, prefixErr(err, "[value]")
		}
		return encodeMap(key, val), nil
	case reflect.Struct:
		type field struct {
			index int
			name  string
			enc   encodeFunc
		}
		var fields []field
		for i := range t.NumField() {
			f := t.Field(i)
			skip, err := skipField(f)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			enc, err := c.compile(f.Type)
			if err != nil {
				return nil, prefixErr(err, f.Name)
			}
			fields = append(fields, field{i, f.Name, enc})
		}
		return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
			for _, f := range fields {
				var err error
				if b, err = f.enc(b, v.Field(f.index), depth); err != nil {
					return b, prefixErr(err, f.name)
				}
			}
			return b, nil
		}, nil
	case reflect.Pointer:
		elem, err := c.compile(t.Elem())
		if err != nil {
			return nil, err
		}
		return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
			if v.IsNil() {
				return append(b, 0), nil
			}
			return elem(append(b, 1), v.Elem(), depth)
		}, nil
	}
	return nil, &typeError{t: t}
}

func encodeVarint(b []byte, v reflect.Value, _ int) ([]byte, error) {
	return AppendInt(b, v.Int()), nil
}

func encodeUvarint(b []byte, v reflect.Value, _ int) ([]byte, error) {
	return AppendUint(b, v.Uint()), nil
}

// float32Bits returns the bits of a float32 value. reflect.Value.Float widens
// to float64, which keeps every value except the payload of a signalling NaN
// (the conversion quiets it), so NaNs are read from memory instead.
func float32Bits(v reflect.Value) uint32 {
	if f := v.Float(); f == f {
		return math.Float32bits(float32(f))
	}
	if !v.CanAddr() {
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		v = c
	}
	return *(*uint32)(v.Addr().UnsafePointer())
}

func encodeMarshaler(t reflect.Type) encodeFunc {
	valueRecv := t.Implements(marshalerType)
	return func(b []byte, v reflect.Value, _ int) ([]byte, error) {
		var m Marshaler
		switch {
		case t.Kind() == reflect.Interface:
			if v.IsNil() {
				return b, &EncodeError{Err: fmt.Errorf("%w: nil %v", ErrUnsupported, t)}
			}
			m = v.Interface().(Marshaler)
		case valueRecv:
			m = v.Interface().(Marshaler)
		case v.CanAddr():
			m = v.Addr().Interface().(Marshaler)
		default:
			p := reflect.New(t)
			p.Elem().Set(v)
			m = p.Interface().(Marshaler)
		}
		out, err := m.MarshalBARE(b)
		if err != nil {
			if e, ok := err.(*EncodeError); ok {
				c := *e // it may be another call's; do not edit it
				return b, &c
			}
			return b, &EncodeError{Err: err}
		}
		return out, nil
	}
}

func encodeMap(key, val encodeFunc) encodeFunc {
	type entry struct {
		start, end int // of the encoded key in keys
		v          reflect.Value
	}
	return func(b []byte, v reflect.Value, depth int) ([]byte, error) {
		n := v.Len()
		b = AppendUint(b, uint64(n))
		if n == 0 {
			return b, nil
		}
		var keys []byte
		entries := make([]entry, 0, n)
		for it := v.MapRange(); it.Next(); {
			start := len(keys)
			var err error
			if keys, err = key(keys, it.Key(), depth); err != nil {
				return b, prefixErr(err, "[key "+strconv.Itoa(len(entries))+"]")
			}
			entries = append(entries, entry{start, len(keys), it.Value()})
		}
		slices.SortFunc(entries, func(x, y entry) int {
			return bytes.Compare(keys[x.start:x.end], keys[y.start:y.end])
		})
		for i, e := range entries {
			k := keys[e.start:e.end]
			if i > 0 {
				if p := entries[i-1]; bytes.Equal(keys[p.start:p.end], k) {
					// Distinct Go keys (differing in skipped fields, or NaNs)
					// with one encoding; a decoder would reject the map.
					return b, &EncodeError{Field: "[key " + strconv.Itoa(i) + "]", Err: fmt.Errorf("%w: two keys encode the same", ErrInvalid)}
				}
			}
			b = append(b, k...)
			var err error
			if b, err = val(b, e.v, depth); err != nil {
				return b, prefixErr(err, index(i))
			}
		}
		return b, nil
	}
}

// skipField reports whether a struct field is left out of the encoding:
// unexported fields and fields tagged `bare:"-"`. Other tag values are
// reserved and rejected, so that a typo does not go unnoticed.
func skipField(f reflect.StructField) (bool, error) {
	if !f.IsExported() {
		return true, nil
	}
	switch tag, ok := f.Tag.Lookup("bare"); {
	case !ok || tag == "":
		return false, nil
	case tag == "-":
		return true, nil
	default:
		return false, &typeError{t: f.Type, path: f.Name, why: "unknown struct tag bare:" + strconv.Quote(tag)}
	}
}

// ---- decoders

// decodeFunc decodes into v, which is always addressable and settable.
type decodeFunc func(r *Reader, v reflect.Value, depth int) error

// decNode is a compiled decoder with the minimum number of bytes a value of
// its type occupies (0 if unknown, as for Unmarshalers). Slice, map and
// optional decoders read minSize at decode time, through the pointer, because
// for a recursive type it is known only once compilation ends.
type decNode struct {
	dec     decodeFunc
	minSize int
	ready   bool
}

// decCache maps reflect.Type to a ready *decNode or a cached *typeError.
var decCache sync.Map

func decoderOf(t reflect.Type) (decodeFunc, error) {
	if e, ok := decCache.Load(t); ok {
		switch e := e.(type) {
		case *decNode:
			return e.dec, nil
		case *typeError:
			return nil, e
		}
	}
	c := decCompiler{}
	dec, _, err := c.compile(t)
	if err != nil {
		if te, ok := err.(*typeError); ok && te.path != "" {
			prefixErr(te, t.String())
		}
		decCache.Store(t, err)
		return nil, err
	}
	for typ, n := range c {
		decCache.LoadOrStore(typ, n)
	}
	return dec, nil
}

type decCompiler map[reflect.Type]*decNode

func (c decCompiler) compile(t reflect.Type) (decodeFunc, *decNode, error) {
	if e, ok := decCache.Load(t); ok {
		if n, ok := e.(*decNode); ok {
			return n.dec, n, nil
		}
	}
	if n, ok := c[t]; ok {
		if n.ready {
			return n.dec, n, nil
		}
		return func(r *Reader, v reflect.Value, depth int) error {
			if depth >= maxDepth {
				return &DecodeError{Offset: r.Offset(), Err: ErrDepth}
			}
			return n.dec(r, v, depth+1)
		}, n, nil
	}
	n := &decNode{}
	c[t] = n
	dec, minSize, err := c.build(t)
	if err != nil {
		return nil, nil, err
	}
	n.dec, n.minSize, n.ready = dec, minSize, true
	return dec, n, nil
}

func (c decCompiler) build(t reflect.Type) (decodeFunc, int, error) {
	if hasUnmarshaler(t) {
		if !hasMarshaler(t) && t.Kind() != reflect.Interface {
			return nil, 0, &typeError{t: t, why: "implements Unmarshaler but not Marshaler"}
		}
		return decodeUnmarshaler(t), 0, nil
	}
	if hasMarshaler(t) {
		return nil, 0, &typeError{t: t, why: "implements Marshaler but not Unmarshaler"}
	}
	switch t {
	case intType:
		return decodeVarint, 1, nil
	case uintType:
		return decodeUvarint, 1, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.Bool("")
			v.SetBool(x)
			return err
		}, 1, nil
	case reflect.Int:
		return decodeVarint, 1, nil
	case reflect.Uint:
		return decodeUvarint, 1, nil
	case reflect.Int8:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U8("")
			v.SetInt(int64(int8(x)))
			return err
		}, 1, nil
	case reflect.Int16:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U16("")
			v.SetInt(int64(int16(x)))
			return err
		}, 2, nil
	case reflect.Int32:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U32("")
			v.SetInt(int64(int32(x)))
			return err
		}, 4, nil
	case reflect.Int64:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U64("")
			v.SetInt(int64(x))
			return err
		}, 8, nil
	case reflect.Uint8:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U8("")
			v.SetUint(uint64(x))
			return err
		}, 1, nil
	case reflect.Uint16:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U16("")
			v.SetUint(uint64(x))
			return err
		}, 2, nil
	case reflect.Uint32:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U32("")
			v.SetUint(uint64(x))
			return err
		}, 4, nil
	case reflect.Uint64:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U64("")
			v.SetUint(x)
			return err
		}, 8, nil
	case reflect.Float32:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.U32("")
			if err != nil {
				return err
			}
			// Store the bits: SetFloat would go through float64 and
			// quiet a signalling NaN.
			*(*uint32)(v.Addr().UnsafePointer()) = x
			return nil
		}, 4, nil
	case reflect.Float64:
		return func(r *Reader, v reflect.Value, _ int) error {
			x, err := r.F64("")
			v.SetFloat(x)
			return err
		}, 8, nil
	case reflect.String:
		return func(r *Reader, v reflect.Value, _ int) error {
			s, err := r.String("")
			v.SetString(s)
			return err
		}, 1, nil
	case reflect.Slice:
		if isPlainByte(t.Elem()) {
			return func(r *Reader, v reflect.Value, _ int) error {
				b, err := r.Data("")
				if err != nil {
					return err
				}
				if len(b) == 0 {
					v.SetZero()
					return nil
				}
				v.SetBytes(bytes.Clone(b))
				return nil
			}, 1, nil
		}
		elem, en, err := c.compile(t.Elem())
		if err != nil {
			return nil, 0, err
		}
		return decodeSlice(t, elem, en), 1, nil
	case reflect.Array:
		n := t.Len()
		if isPlainByte(t.Elem()) {
			return func(r *Reader, v reflect.Value, _ int) error {
				b, err := r.Fixed("", n)
				if err != nil {
					return err
				}
				copy(v.Bytes(), b)
				return nil
			}, n, nil
		}
		elem, en, err := c.compile(t.Elem())
		if err != nil {
			return nil, 0, err
		}
		return func(r *Reader, v reflect.Value, depth int) error {
			for i := range n {
				if err := elem(r, v.Index(i), depth); err != nil {
					return prefixErr(err, index(i))
				}
			}
			return nil
		}, mulSat(n, en.minSize), nil
	case reflect.Map:
		key, kn, err := c.compile(t.Key())
		if err != nil {
			return nil, 0, prefixErr(err, "[key]")
		}
		val, vn, err := c.compile(t.Elem())
		if err != nil {
			return nil, 0, prefixErr(err, "[value]")
		}
		return decodeMap(t, key, val, kn, vn), 1, nil
	case reflect.Struct:
		type field struct {
			index int
			name  string
			dec   decodeFunc
		}
		var fields []field
		minSize := 0
		for i := range t.NumField() {
			f := t.Field(i)
			skip, err := skipField(f)
			if err != nil {
				return nil, 0, err
			}
			if skip {
				continue
			}
			dec, fn, err := c.compile(f.Type)
			if err != nil {
				return nil, 0, prefixErr(err, f.Name)
			}
			fields = append(fields, field{i, f.Name, dec})
			// A field's type cannot be an unfinished ancestor (the struct
			// would contain itself), so fn.minSize is final here.
			minSize = addSat(minSize, fn.minSize)
		}
		return func(r *Reader, v reflect.Value, depth int) error {
			for _, f := range fields {
				if err := f.dec(r, v.Field(f.index), depth); err != nil {
					return prefixErr(err, f.name)
				}
			}
			return nil
		}, minSize, nil
	case reflect.Pointer:
		et := t.Elem()
		elem, en, err := c.compile(et)
		if err != nil {
			return nil, 0, err
		}
		return func(r *Reader, v reflect.Value, depth int) error {
			start := r.Offset()
			tag, err := r.U8("")
			if err != nil {
				return err
			}
			switch tag {
			case 0:
				v.SetZero()
				return nil
			case 1:
			default:
				return &DecodeError{Offset: start, Err: fmt.Errorf("%w: option tag %#02x", ErrInvalid, tag)}
			}
			// Allocate only if the input can hold the value.
			if r.Len() < en.minSize {
				return &DecodeError{Offset: r.Offset(), Err: ErrShort}
			}
			p := reflect.New(et)
			if err := elem(r, p.Elem(), depth); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}, 1, nil
	}
	return nil, 0, &typeError{t: t}
}

func decodeVarint(r *Reader, v reflect.Value, _ int) error {
	start := r.Offset()
	x, err := r.Int("")
	if err != nil {
		return err
	}
	if v.OverflowInt(x) { // a 32-bit int
		return &DecodeError{Offset: start, Err: ErrOverflow}
	}
	v.SetInt(x)
	return nil
}

func decodeUvarint(r *Reader, v reflect.Value, _ int) error {
	start := r.Offset()
	x, err := r.Uint("")
	if err != nil {
		return err
	}
	if v.OverflowUint(x) {
		return &DecodeError{Offset: start, Err: ErrOverflow}
	}
	v.SetUint(x)
	return nil
}

func decodeUnmarshaler(t reflect.Type) decodeFunc {
	return func(r *Reader, v reflect.Value, _ int) error {
		var u Unmarshaler
		if t.Kind() == reflect.Interface {
			if v.IsNil() {
				return &DecodeError{Offset: r.Offset(), Err: fmt.Errorf("%w: nil %v", ErrUnsupported, t)}
			}
			u = v.Interface().(Unmarshaler)
		} else {
			u = v.Addr().Interface().(Unmarshaler)
		}
		start := r.Offset()
		err := u.UnmarshalBARE(r)
		if err == nil {
			return nil
		}
		if e, ok := err.(*DecodeError); ok {
			c := *e // it may be another call's; do not edit it
			return &c
		}
		return &DecodeError{Offset: start, Err: err}
	}
}

// prealloc returns how many elements of type t to allocate up front for a
// count of n, which Reader.Length has already bounded by the input.
func prealloc(t reflect.Type, n int) int {
	if s := t.Size(); s > 0 && uint64(n) > preallocBytes/uint64(s) {
		return int(preallocBytes / s)
	}
	return n
}

func decodeSlice(t reflect.Type, elem decodeFunc, en *decNode) decodeFunc {
	et := t.Elem()
	return func(r *Reader, v reflect.Value, depth int) error {
		n, err := r.Length("", en.minSize)
		if err != nil {
			return err
		}
		if n == 0 {
			v.SetZero()
			return nil
		}
		c := prealloc(et, n)
		if c == n {
			s := reflect.MakeSlice(t, n, n)
			for i := range n {
				if err := elem(r, s.Index(i), depth); err != nil {
					return prefixErr(err, index(i))
				}
			}
			v.Set(s)
			return nil
		}
		// Large elements: grow as they decode rather than trust the count.
		v.Set(reflect.MakeSlice(t, 0, c))
		for i := range n {
			if v.Len() == v.Cap() {
				v.Grow(1)
			}
			v.SetLen(i + 1)
			if err := elem(r, v.Index(i), depth); err != nil {
				return prefixErr(err, index(i))
			}
		}
		return nil
	}
}

func decodeMap(t reflect.Type, key, val decodeFunc, kn, vn *decNode) decodeFunc {
	kt, vt := t.Key(), t.Elem()
	return func(r *Reader, v reflect.Value, depth int) error {
		n, err := r.Length("", addSat(kn.minSize, vn.minSize))
		if err != nil {
			return err
		}
		if n == 0 {
			v.SetZero()
			return nil
		}
		m := reflect.MakeMapWithSize(t, min(n, preallocBytes/int(kt.Size()+vt.Size()+1)))
		k := reflect.New(kt).Elem()
		e := reflect.New(vt).Elem()
		for i := range n {
			start := r.Offset()
			k.SetZero()
			if err := key(r, k, depth); err != nil {
				return prefixErr(err, "[key "+strconv.Itoa(i)+"]")
			}
			// serde would keep the last value; a map with two equal keys has
			// no single meaning and no encoder here or in Rust emits one.
			if m.MapIndex(k).IsValid() {
				return &DecodeError{Field: "[key " + strconv.Itoa(i) + "]", Offset: start, Err: fmt.Errorf("%w: duplicate map key", ErrInvalid)}
			}
			e.SetZero()
			if err := val(r, e, depth); err != nil {
				return prefixErr(err, index(i))
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	}
}

func addSat(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func mulSat(a, b int) int {
	if a != 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
}
