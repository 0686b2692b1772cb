package portal

import (
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
)

// TestEarlyRoomFits: a Ping in the early-data form with as many early
// bytes as earlyRoom allows, its routes (counted twice, as inside a
// secure channel) and frameSlack fits a 65535-byte frame, with a window
// of any size; short routes allow MaxEarly.
func TestEarlyRoomFits(t *testing.T) {
	from := routing.LocalAddress(strings.Repeat("b", 32))
	short := routing.Route{routing.TCPAddress("127.0.0.1:4000"), routing.LocalAddress(strings.Repeat("c", 32))}
	if got := earlyRoom(short, from); got != MaxEarly {
		t.Errorf("short route: room %d, want MaxEarly", got)
	}
	for _, hops := range []int{1, 40, 150, 160, 300} {
		long := make(routing.Route, hops)
		for i := range long {
			long[i] = routing.LocalAddress(strings.Repeat("a", 200))
		}
		room := earlyRoom(long, from)
		if room <= 0 {
			continue // no early data: a plain-sized Ping
		}
		p := AppendPingEarly(nil, ^uint64(0), make([]byte, room))
		m := routing.TransportMessage{Onward: long, Return: routing.Route{from}, Payload: p}
		if n := m.EncodedLen() + m.EncodedLen() - len(m.Payload) + frameSlack; n > 65535 {
			t.Fatalf("%d hops: %d early bytes make a frame of %d bytes", hops, room, n)
		}
	}
}
