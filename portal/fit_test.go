package portal

import (
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
)

// TestFitChunk: a chunk with its message header, its routes (onward and
// return) and frameSlack fits a 65535-byte frame; short routes keep the
// configured chunk, and a 256-byte legacy chunk stays 256 whatever the
// route.
func TestFitChunk(t *testing.T) {
	long := make(routing.Route, 40)
	for i := range long {
		long[i] = routing.LocalAddress(strings.Repeat("a", 200))
	}
	short := routing.Route{routing.TCPAddress("127.0.0.1:4000"), routing.LocalAddress(strings.Repeat("c", 32))}
	from := routing.LocalAddress(strings.Repeat("b", 32))
	for _, tc := range []struct {
		name   string
		chunk  int
		route  routing.Route
		want   int  // when not shrunk
		shrunk bool // less than chunk
	}{
		{"max chunk, short route", MaxChunk, short, MaxChunk, false},
		{"legacy 256, long route", 256, long, 256, false},
		{"max chunk, long route", MaxChunk, long, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fitChunk(tc.chunk, tc.route, from)
			if !tc.shrunk && got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
			if tc.shrunk && got >= tc.chunk {
				t.Fatalf("got %d, want less than %d", got, tc.chunk)
			}
			m := routing.TransportMessage{Onward: tc.route, Return: routing.Route{from}, Payload: make([]byte, headroom+got)}
			// Inside a secure channel the routes travel twice (inner and
			// outer message): counted twice, with the slack.
			if n := m.EncodedLen() + m.EncodedLen() - len(m.Payload) + frameSlack; n > 65535 {
				t.Fatalf("chunk %d: frame of %d bytes", got, n)
			}
		})
	}
}
