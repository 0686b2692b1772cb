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
