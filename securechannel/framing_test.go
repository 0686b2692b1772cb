package securechannel

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// segment returns one named segment of a vector file under testdata/.
func segment(tb testing.TB, file, name string) []byte {
	tb.Helper()
	f, err := vectorfile.Load(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	b, ok := f.Segments[name]
	if !ok {
		tb.Fatalf("%s has no segment %q", file, name)
	}
	return b
}

func cipherFor(tb testing.TB, file string) *noise.CipherState {
	tb.Helper()
	c, err := noise.NewCipherState(noise.Key(segment(tb, file, "key")))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestListenerMessageVectors checks both M1 wrappings against
// sc-m1-listener-message-{enum,struct}.hex (protocol.md §10.4), both ways.
func TestListenerMessageVectors(t *testing.T) {
	m1 := segment(t, "noise-xx-handshake-1.hex", "m1")
	for _, tc := range []struct {
		file string
		form ListenerMessageForm
	}{
		{"sc-m1-listener-message-enum.hex", ListenerMessageEnum},
		{"sc-m1-listener-message-struct.hex", ListenerMessageStruct},
	} {
		t.Run(tc.form.String(), func(t *testing.T) {
			want := segment(t, tc.file, "listener-message")
			got := appendListenerMessage(nil, tc.form, m1, nil)
			if !bytes.Equal(got, want) {
				t.Errorf("listener message:\n got %x\nwant %x", got, want)
			}
			field := bare.AppendData(nil, got)
			if wantField := segment(t, tc.file, "payload-field"); !bytes.Equal(field, wantField) {
				t.Errorf("payload field:\n got %x\nwant %x", field, wantField)
			}
			gotM1, form, cb, err := parseListenerMessage(want)
			if err != nil || form != tc.form || cb != nil || !bytes.Equal(gotM1, m1) {
				t.Errorf("parse = %x, %v, %v, %v; want %x, %v, nil, nil", gotM1, form, cb, err, m1, tc.form)
			}
		})
	}
}

func TestParseListenerMessage(t *testing.T) {
	m1 := bytes.Repeat([]byte{0xab}, 32)
	cb := routing.LocalAddress("cb")
	enum := appendListenerMessage(nil, ListenerMessageEnum, m1, nil)
	strct := appendListenerMessage(nil, ListenerMessageStruct, m1, nil)
	withCB := appendListenerMessage(nil, ListenerMessageStruct, m1, &cb)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	// The struct form with Some(0#cb) ends 01 00 02 63 62 (protocol.md §10.4).
	if !bytes.HasSuffix(withCB, []byte{0x01, 0x00, 0x02, 0x63, 0x62}) {
		t.Errorf("struct form with callback ends %x", withCB[33:])
	}

	ok := []struct {
		name string
		in   []byte
		form ListenerMessageForm
		cb   *routing.Address
	}{
		{"enum", enum, ListenerMessageEnum, nil},
		{"struct None", strct, ListenerMessageStruct, nil},
		{"struct Some", withCB, ListenerMessageStruct, &cb},
		{"struct Some TCP", appendListenerMessage(nil, ListenerMessageStruct, m1, &routing.Address{Type: routing.TCP, Value: "127.0.0.1:4000"}),
			ListenerMessageStruct, &routing.Address{Type: routing.TCP, Value: "127.0.0.1:4000"}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, form, gotCB, err := parseListenerMessage(tc.in)
			if err != nil {
				t.Fatalf("parse %x: %v", tc.in, err)
			}
			if !bytes.Equal(got, m1) || form != tc.form {
				t.Errorf("got %x %v, want %x %v", got, form, m1, tc.form)
			}
			if (gotCB == nil) != (tc.cb == nil) || (gotCB != nil && *gotCB != *tc.cb) {
				t.Errorf("callback %v, want %v", gotCB, tc.cb)
			}
		})
	}

	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"enum only", []byte{0}},
		{"enum short M1", cat([]byte{0, 31}, m1[:31])},
		{"enum long M1", cat([]byte{0, 33}, m1, []byte{1})},
		{"enum truncated", enum[:33]},
		{"enum trailing", cat(enum, []byte{0})},
		{"enum other variant", cat([]byte{1, 32}, m1)},
		{"struct no option", strct[:33]},
		{"struct option 2", cat(strct[:33], []byte{2})},
		{"struct trailing", cat(strct, []byte{0})},
		{"struct Some truncated", withCB[:len(withCB)-1]},
		{"struct Some bad type", cat(strct[:33], []byte{1, 0x80, 1, 'a'})},
		{"struct Some bad UTF-8", cat(strct[:33], []byte{1, 0, 1, 0xff})},
		{"struct short M1", cat([]byte{31}, m1[:31], []byte{0})},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"M2 sized", cat([]byte{0x60}, bytes.Repeat([]byte{1}, 96))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if m, f, c, err := parseListenerMessage(tc.in); !errors.Is(err, ErrListenerMessage) {
				t.Errorf("parse %x = %x, %v, %v, %v; want ErrListenerMessage", tc.in, m, f, c, err)
			}
		})
	}
}

// TestDataMessageVectors seals and opens the two data vectors of
// protocol.md §11.9 (sc-data-*.hex): the payload field is 37 36 ‖ blob.
func TestDataMessageVectors(t *testing.T) {
	for _, file := range []string{"sc-data-initiator-to-responder.hex", "sc-data-responder-to-initiator.hex"} {
		t.Run(file, func(t *testing.T) {
			c := cipherFor(t, file)
			inner := segment(t, file, "inner-plaintext")
			field := segment(t, file, "payload-field")
			payload := appendSealed(nil, c, 0, inner)
			if got := bare.AppendData(nil, payload); !bytes.Equal(got, field) {
				t.Errorf("payload field:\n got %x\nwant %x", got, field)
			}
			if len(payload) != sealedLen(len(inner)) {
				t.Errorf("sealedLen = %d, want %d", sealedLen(len(inner)), len(payload))
			}
			n, pt, err := openSealed(c, field[1:])
			if err != nil || n != 0 || !bytes.Equal(pt, inner) {
				t.Errorf("open = %d, %x, %v; want 0, %x, nil", n, pt, err, inner)
			}
		})
	}
}

func TestOpenSealedRejects(t *testing.T) {
	file := "sc-data-initiator-to-responder.hex"
	c := cipherFor(t, file)
	good := segment(t, file, "payload-field")[1:]
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty", nil, ErrDataMessage},
		{"no counter", []byte{0}, ErrDataMessage},
		{"tag too short", bare.AppendData(nil, make([]byte, minBlobLen-1)), ErrDataMessage},
		{"length past end", good[:len(good)-1], ErrDataMessage},
		{"trailing byte", append(bytes.Clone(good), 0), ErrDataMessage},
		{"counter changed", flip(2), noise.ErrAuthentication},
		{"ciphertext changed", flip(10), noise.ErrAuthentication},
		{"tag changed", flip(len(good) - 1), noise.ErrAuthentication},
		{"empty plaintext, wrong tag", bare.AppendData(nil, make([]byte, minBlobLen)), noise.ErrAuthentication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, pt, err := openSealed(c, tc.payload); !errors.Is(err, tc.want) || pt != nil {
				t.Errorf("open = %x, %v; want %v", pt, err, tc.want)
			}
		})
	}
	// The other direction's key must not open it: the keys are not shared.
	if _, _, err := openSealed(cipherFor(t, "sc-data-responder-to-initiator.hex"), good); !errors.Is(err, noise.ErrAuthentication) {
		t.Errorf("open with k1: %v, want ErrAuthentication", err)
	}
}

// BenchmarkOpenChunk is the receiving side's decryption of a 60 KiB portal
// chunk: into a new buffer (a payload that is read-only) and in place (a
// payload the transport read into memory of its own,
// node.Message.ExclusivePayload). Each iteration opens a fresh copy of the message,
// as a transport's reader would deliver it; the copy is made in both.
func BenchmarkOpenChunk(b *testing.B) {
	c := cipherFor(b, "sc-data-initiator-to-responder.hex")
	sealed := appendSealed(nil, c, 1, make([]byte, 60<<10))
	for _, bc := range []struct {
		name string
		open func(*noise.CipherState, []byte) (uint16, []byte, error)
	}{{"new-buffer", openSealed}, {"in-place", openInPlace}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(60 << 10)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := bc.open(c, bytes.Clone(sealed)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
