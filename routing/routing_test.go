package routing_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/routing"
)

func vector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := vectorfile.Bytes(filepath.Join("testdata", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frameBody strips and checks the u16 big-endian length prefix.
func frameBody(t *testing.T, frame []byte) []byte {
	t.Helper()
	bodies, err := vectorfile.Frames(frame)
	if err != nil || len(bodies) != 1 {
		t.Fatalf("vector is not one frame: %v (%d frames)", err, len(bodies))
	}
	return bodies[0]
}

func r(s string) routing.Route { return routing.MustParseRoute(s) }

func bareString(s string) []byte { return bare.AppendString(nil, s) }

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want routing.Address
		err  error
	}{
		{"0#echo_service", routing.LocalAddress("echo_service"), nil},
		{"echo_service", routing.LocalAddress("echo_service"), nil},
		{"1#127.0.0.1:4000", routing.TCPAddress("127.0.0.1:4000"), nil},
		{"1#[::1]:4000", routing.TCPAddress("[::1]:4000"), nil},
		{"  0#app\n", routing.LocalAddress("app"), nil},
		{"127#x", routing.Address{Type: 127, Value: "x"}, nil},
		{"0#", routing.LocalAddress(""), nil},
		{"", routing.Address{}, routing.ErrEmpty},
		{"   ", routing.Address{}, routing.ErrEmpty},
		{"0#a#b", routing.Address{}, routing.ErrSyntax},
		{"x#a", routing.Address{}, routing.ErrType},
		{"#a", routing.Address{}, routing.ErrType},
		{"-1#a", routing.Address{}, routing.ErrType},
		{"128#a", routing.Address{}, routing.ErrType},
		{"256#a", routing.Address{}, routing.ErrType},
		{"99999999999999999999#a", routing.Address{}, routing.ErrType},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := routing.ParseAddress(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ParseAddress(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if tc.err != nil {
				var pe *routing.ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %T is not *ParseError", err)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("ParseAddress(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical String()
		wantLen int
		err     error
	}{
		{"1#127.0.0.1:4000 => 0#1a840b9c", "1#127.0.0.1:4000 => 0#1a840b9c", 2, nil},
		{"1#127.0.0.1:4000=>echo_service", "1#127.0.0.1:4000 => 0#echo_service", 2, nil},
		{" node-1 =>node-2=> node-3 ", "0#node-1 => 0#node-2 => 0#node-3", 3, nil},
		{"echo_service\n", "0#echo_service", 1, nil},
		{"", "", 0, routing.ErrEmpty},
		{"a=>", "", 0, routing.ErrEmpty},
		{"a=>=>b", "", 0, routing.ErrEmpty},
		{"1#a#b => c", "", 0, routing.ErrSyntax},
		{"a => z#b", "", 0, routing.ErrType},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := routing.ParseRoute(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ParseRoute(%q) error = %v, want %v", tc.in, err, tc.err)
			}
			if err != nil {
				return
			}
			if got.String() != tc.want || len(got) != tc.wantLen {
				t.Fatalf("ParseRoute(%q) = %q (%d), want %q (%d)", tc.in, got, len(got), tc.want, tc.wantLen)
			}
			again, err := routing.ParseRoute(got.String())
			if err != nil || !again.Equal(got) {
				t.Fatalf("reparse of %q = %v, %v", got, again, err)
			}
		})
	}
}

func TestAddressStringInvalidUTF8(t *testing.T) {
	a := routing.Address{Type: 0, Value: "\xff"}
	if got := a.String(); got != "0#Invalid UTF-8" {
		t.Fatalf("got %q", got)
	}
}

func TestRouteOperations(t *testing.T) {
	route := r("1#127.0.0.1:4000 => a => b")
	if n, _ := route.Next(); n != routing.TCPAddress("127.0.0.1:4000") {
		t.Errorf("Next = %v", n)
	}
	if got := route.Step().String(); got != "0#a => 0#b" {
		t.Errorf("Step = %q", got)
	}
	if rc, _ := route.Recipient(); rc != routing.LocalAddress("b") {
		t.Errorf("Recipient = %v", rc)
	}
	if got := route.Prepend(routing.LocalAddress("x")).String(); got != "0#x => 1#127.0.0.1:4000 => 0#a => 0#b" {
		t.Errorf("Prepend = %q", got)
	}
	if got := route.Append(routing.LocalAddress("y")).String(); got != "1#127.0.0.1:4000 => 0#a => 0#b => 0#y" {
		t.Errorf("Append = %q", got)
	}
	// Operations never alias the receiver.
	s := route.Step()
	s[0] = routing.LocalAddress("changed")
	if route[1].Value != "a" {
		t.Error("Step aliased the receiver")
	}
	var empty routing.Route
	if _, ok := empty.Next(); ok {
		t.Error("Next on empty route")
	}
	if _, ok := empty.Recipient(); ok {
		t.Error("Recipient on empty route")
	}
	if empty.Step() != nil {
		t.Error("Step on empty route")
	}
}

func TestAddressVectors(t *testing.T) {
	tests := []struct {
		file string
		addr routing.Address
	}{
		{"addr-local-echo_service", routing.LocalAddress("echo_service")},
		{"addr-tcp-rust-text", routing.TCPAddress("127.0.0.1:4000")},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			want := vector(t, tc.file)
			// An address is encoded as the single element of a route.
			m := routing.TransportMessage{Onward: routing.NewRoute(tc.addr)}
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := b[2 : len(b)-2]; !bytes.Equal(got, want) {
				t.Fatalf("encoded %x, want %x", got, want)
			}
		})
	}
}

// TestElixirBinaryTCPAddress: the Elixir form of 1#127.0.0.1:4000 is accepted
// on input and normalised to the text form (protocol.md §2.4 policy).
func TestElixirBinaryTCPAddress(t *testing.T) {
	body := vector(t, "elixir-v2-message-tcp-addresses")
	m, n, err := routing.DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(body) {
		t.Errorf("consumed %d of %d", n, len(body))
	}
	if got := m.Onward.String(); got != "1#127.0.0.1:4000 => 0#printer" {
		t.Errorf("onward = %q", got)
	}
	if got := m.Return.String(); got != "1#127.0.0.1:3000" {
		t.Errorf("return = %q", got)
	}
	if string(m.Payload) != "hello" {
		t.Errorf("payload = %q", m.Payload)
	}
	// IPv6 and wrong-length Elixir forms are rejected.
	for _, v := range []string{"01 13 01", "01 08 00 7f 00 00 01 a0 0f 00", "01 03 00 01 02"} {
		b := append([]byte{1, 1}, mustHex(v)...)
		b = append(b, 0, 0)
		_, _, err := routing.DecodeMessage(b)
		if !errors.Is(err, routing.ErrAddress) && !errors.Is(err, bare.ErrShort) && !errors.Is(err, bare.ErrLength) {
			t.Errorf("%s: err = %v", v, err)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestMessageVectors pins every transport-message vector in both directions:
// our encoding of the described message is byte-identical, and decoding the
// vector yields that message.
func TestMessageVectors(t *testing.T) {
	hello := bareString("Hello Ockam!")
	viaHub := bareString("This message goes via Hub")
	register := bareString("register")
	tests := []struct {
		file string
		msg  routing.TransportMessage
	}{
		{"frame-echo-request", routing.TransportMessage{Onward: r("echo_service"), Return: r("app"), Payload: bareString("Hello you over there!")}},
		{"frame-echo-reply", routing.TransportMessage{Onward: r("app"), Return: r("echo_service"), Payload: bareString("Hello you over there!")}},
		{"fwd-march-1-register", routing.TransportMessage{Onward: r("forwarding_service"), Return: r("worker"), Payload: register}},
		{"fwd-march-2-register-reply", routing.TransportMessage{Onward: r("worker"), Return: r("1a840b9c"), Payload: register}},
		{"fwd-march-3-send-to-forwarder", routing.TransportMessage{Onward: r("1a840b9c"), Return: r("app"), Payload: viaHub}},
		{"fwd-march-4-inbox-to-receiver", routing.TransportMessage{Onward: r("worker"), Return: r("1a840b9c_outbox => c0ffee01 => app"), Payload: viaHub}},
		{"fwd-april-4-forwarder-to-receiver", routing.TransportMessage{Onward: r("worker"), Return: r("c0ffee01 => app"), Payload: viaHub}},
		{"multihop-1-initiator-to-middle", routing.TransportMessage{Onward: r("1#127.0.0.1:6000 => echoer"), Return: r("app"), Payload: hello}},
		{"multihop-2-middle-to-responder", routing.TransportMessage{Onward: r("echoer"), Return: r("1#127.0.0.1:52000 => app"), Payload: hello}},
		{"multihop-3-responder-to-middle", routing.TransportMessage{Onward: r("1#127.0.0.1:52000 => app"), Return: r("echoer"), Payload: hello}},
		{"multihop-4-middle-to-initiator", routing.TransportMessage{Onward: r("app"), Return: r("1#127.0.0.1:6000 => echoer"), Payload: hello}},
		{"control-ping", routing.TransportMessage{Return: r("app"), Payload: []byte{0}}},
		{"control-pong", routing.TransportMessage{Onward: r("app"), Payload: []byte{1}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			want := frameBody(t, vector(t, tc.file))
			got, err := tc.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n%x\nwant\n%x", got, want)
			}
			if n := tc.msg.EncodedLen(); n != len(want) {
				t.Errorf("EncodedLen = %d, want %d", n, len(want))
			}
			var dec routing.TransportMessage
			if err := dec.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if dec.Version != 1 || !dec.Onward.Equal(tc.msg.Onward) || !dec.Return.Equal(tc.msg.Return) || !bytes.Equal(dec.Payload, tc.msg.Payload) {
				t.Fatalf("decoded %+v, want %+v", dec, tc.msg)
			}
		})
	}
}

func TestDecodeTrailingBytes(t *testing.T) {
	body := frameBody(t, vector(t, "frame-echo-request"))
	in := append(append([]byte(nil), body...), 0xde, 0xad, 0xbe)
	m, n, err := routing.DecodeMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(body) {
		t.Fatalf("consumed %d, want %d", n, len(body))
	}
	out, _ := m.MarshalBinary()
	if !bytes.Equal(out, body) {
		t.Fatal("re-encoding kept trailing bytes")
	}
}

func TestDecodeNonMinimalVarint(t *testing.T) {
	// onward count 1 written as 81 00.
	in := mustHex("01 81 00 00 01 61 00 00")
	m, _, err := routing.DecodeMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	if m.Onward.String() != "0#a" {
		t.Fatalf("onward = %v", m.Onward)
	}
	out, _ := m.MarshalBinary()
	if !bytes.Equal(out, mustHex("01 01 00 01 61 00 00")) {
		t.Fatalf("re-encoded %x: not minimal", out)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		err    error
		field  string
		offset int
	}{
		{"empty", "", bare.ErrShort, "version", 0},
		{"no onward count", "01", bare.ErrShort, "onward_route count", 1},
		{"huge onward count 2^60", "01 80 80 80 80 80 80 80 80 10", bare.ErrLength, "onward_route count", 1},
		{"count beyond input", "01 05 00 01 61", bare.ErrLength, "onward_route count", 1},
		{"varint overflow", "01 ff ff ff ff ff ff ff ff ff ff 01", bare.ErrOverflow, "onward_route count", 1},
		{"type >= 128", "01 01 80 01 61 00 00", routing.ErrType, "onward_route address type", 2},
		{"value length beyond input", "01 01 00 09 61 00 00", bare.ErrLength, "onward_route address value", 3},
		{"invalid utf-8", "01 01 00 02 c3 28 00 00", routing.ErrUTF8, "onward_route address value", 3},
		{"truncated return", "01 00 01 00", bare.ErrLength, "return_route count", 2},
		{"truncated return value", "01 00 01 00 03 61", bare.ErrLength, "return_route address value", 4},
		{"no payload", "01 00 00", bare.ErrShort, "payload", 3},
		{"version >= 128", "80 00 00 00", routing.ErrType, "version", 0},
		{"payload beyond input", "01 00 00 05 61", bare.ErrLength, "payload", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := routing.DecodeMessage(mustHex(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			var de *routing.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err %T is not *routing.DecodeError", err)
			}
			if de.Field != tc.field || de.Offset != tc.offset {
				t.Fatalf("field %q offset %d, want %q offset %d (%v)", de.Field, de.Offset, tc.field, tc.offset, err)
			}
		})
	}
}

// TestDecodeEveryPrefix: every truncation of a valid message is an error,
// never a panic.
func TestDecodeEveryPrefix(t *testing.T) {
	body := frameBody(t, vector(t, "multihop-2-middle-to-responder"))
	for i := range len(body) {
		if _, _, err := routing.DecodeMessage(body[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
}

func TestEncodeRejectsHighTypes(t *testing.T) {
	m := routing.TransportMessage{Onward: routing.Route{{Type: 200, Value: "x"}}}
	if _, err := m.MarshalBinary(); !errors.Is(err, routing.ErrType) {
		t.Fatalf("err = %v", err)
	}
	// Whatever version a message arrived with, version 1 goes out.
	m = routing.TransportMessage{Version: 7, Onward: routing.MustParseRoute("a")}
	if b, err := m.MarshalBinary(); err != nil || b[0] != 1 {
		t.Fatalf("encoded %x, %v", b, err)
	}
}

func vectorfileBytes(name string) ([]byte, error) {
	return vectorfile.Bytes(filepath.Join("testdata", name+".hex"))
}

func TestDecodeMessageFrom(t *testing.T) {
	hop := routing.TCPAddress("127.0.0.1:52000")
	for _, name := range []string{"frame-echo-request", "control-pong", "multihop-2-middle-to-responder", "fwd-march-4-inbox-to-receiver"} {
		body := frameBody(t, vector(t, name))
		plain, n1, err1 := routing.DecodeMessage(body)
		from, n2, err2 := routing.DecodeMessageFrom(body, hop)
		if err1 != nil || err2 != nil || n1 != n2 {
			t.Fatalf("%s: %v %v", name, err1, err2)
		}
		if !from.Onward.Equal(plain.Onward) || !from.Return.Equal(plain.Return.Prepend(hop)) {
			t.Fatalf("%s: from %v / %v, plain %v / %v", name, from.Onward, from.Return, plain.Onward, plain.Return)
		}
		// Appending to the onward route never clobbers the return route.
		_ = append(from.Onward, routing.LocalAddress("x"))
		if !from.Return.Equal(plain.Return.Prepend(hop)) {
			t.Fatalf("%s: onward append clobbered the return route", name)
		}
	}
}
