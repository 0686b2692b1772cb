package routing_test

import (
	"bytes"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
)

func FuzzDecodeMessage(f *testing.F) {
	for _, name := range []string{"frame-echo-request", "fwd-march-4-inbox-to-receiver", "multihop-2-middle-to-responder", "control-ping"} {
		b := vectorBytes(f, name)
		f.Add(b[2:])
	}
	f.Add(mustHex("01 80 80 80 80 80 80 80 80 10"))
	f.Add(vectorBytes(f, "elixir-v2-message-tcp-addresses"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, n, err := routing.DecodeMessage(in)
		if err != nil {
			return
		}
		if n > len(in) {
			t.Fatalf("consumed %d of %d", n, len(in))
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, n2, err := routing.DecodeMessage(out)
		if err != nil || n2 != len(out) {
			t.Fatalf("decode(encode(x)): %v (%d of %d)", err, n2, len(out))
		}
		if !m2.Onward.Equal(m.Onward) || !m2.Return.Equal(m.Return) || !bytes.Equal(m2.Payload, m.Payload) || m2.Version != routing.Version {
			t.Fatalf("round trip changed the message: %+v != %+v", m2, m)
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"1#127.0.0.1:4000 => 0#1a840b9c", "echo_service", " a=>b => 1#[::1]:4000 ", "0#a#b", "300#x", "", "=>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		route, err := routing.ParseRoute(s)
		if err != nil {
			return
		}
		again, err := routing.ParseRoute(route.String())
		if err != nil {
			// Values that are not valid UTF-8 print as "Invalid UTF-8", and
			// values with leading/trailing space are trimmed: both are
			// lossy by design, but must still parse.
			t.Fatalf("canonical form %q of %q does not parse: %v", route.String(), s, err)
		}
		if len(again) != len(route) {
			t.Fatalf("%q: reparse has %d addresses, want %d", s, len(again), len(route))
		}
	})
}

func vectorBytes(f *testing.F, name string) []byte {
	b, err := vectorfileBytes(name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecodeMessageOwned: decoding in place (DecodeMessageOwned) accepts
// and refuses exactly what DecodeMessageFrom does, and yields the same
// message, whose addresses stay right once the input is no longer shared.
func FuzzDecodeMessageOwned(f *testing.F) {
	for _, name := range []string{"frame-echo-request", "fwd-march-4-inbox-to-receiver", "multihop-2-middle-to-responder", "control-ping"} {
		b := vectorBytes(f, name)
		f.Add(b[2:])
	}
	f.Add(mustHex("01 80 80 80 80 80 80 80 80 10"))
	f.Add(vectorBytes(f, "elixir-v2-message-tcp-addresses"))
	hop := routing.LocalAddress("0011223344556677")
	f.Fuzz(func(t *testing.T, in []byte) {
		owned := bytes.Clone(in)
		m1, n1, err1 := routing.DecodeMessageFrom(in, hop)
		m2, n2, err2 := routing.DecodeMessageOwned(owned, hop)
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("copy: %d, %v; owned: %d, %v", n1, err1, n2, err2)
		}
		if err1 != nil {
			return
		}
		if !m1.Onward.Equal(m2.Onward) || !m1.Return.Equal(m2.Return) || !bytes.Equal(m1.Payload, m2.Payload) {
			t.Fatalf("owned %+v != copy %+v", m2, m1)
		}
		// A clone of the owned routes shares nothing with the input.
		keep := m2.Return.Clone()
		clear(owned)
		if !keep.Equal(m1.Return) {
			t.Fatalf("clone %v != %v after the input was cleared", keep, m1.Return)
		}
	})
}
