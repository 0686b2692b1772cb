package routing_test

import (
	"testing"

	"github.com/ockamhub/ockamhub/routing"
)

// typical is the kind of message a hub relays: a forwarded 100-byte payload.
func typical() routing.TransportMessage {
	return routing.TransportMessage{
		Version: 1,
		Onward:  routing.MustParseRoute("0#c0ffee01 => 0#088479699b22c9b2e12c61b2684e76cb"),
		Return:  routing.MustParseRoute("0#b70d770b => 0#app"),
		Payload: make([]byte, 100),
	}
}

func BenchmarkEncode(b *testing.B) {
	m := typical()
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(m.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	m := typical()
	in, _ := m.MarshalBinary()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := routing.DecodeMessage(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeHop compares a transport's decoding of a received frame:
// DecodeMessageFrom copies the addresses into one new string,
// DecodeMessageOwned decodes them in place (one allocation fewer).
func BenchmarkDecodeHop(b *testing.B) {
	m := typical()
	in, _ := m.MarshalBinary()
	hop := routing.LocalAddress("0011223344556677")
	for _, bc := range []struct {
		name   string
		decode func([]byte, routing.Address) (routing.TransportMessage, int, error)
	}{
		{"copy", routing.DecodeMessageFrom},
		{"owned", routing.DecodeMessageOwned},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := bc.decode(in, hop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
