package securechannel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

// BenchmarkChannelRoundTrip measures one request and its echo through a
// channel on one node (example 05): encrypt, decrypt, echo, encrypt,
// decrypt, plus four worker hand-offs. A channel carries at most 65535
// messages per direction, so a new one is made, off the clock, before the
// counter runs out.
func BenchmarkChannelRoundTrip(b *testing.B) {
	for _, size := range []int{16, 1024, 16384} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			n := newNode(b)
			l := listen(b, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
			ctx := context.Background()
			msg := strings.Repeat("x", size)
			var ch *securechannel.Channel
			var route routing.Route
			fresh := func() {
				if ch != nil {
					ch.Close()
				}
				ch = create(b, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
				route = routing.Route{ch.Address(), echoRoute}
			}
			fresh()
			b.SetBytes(int64(2 * size))
			b.ReportAllocs()
			sent := 0
			for b.Loop() {
				if sent == 60000 {
					b.StopTimer()
					fresh()
					sent = 0
					b.StartTimer()
				}
				if err := n.Send(ctx, route, msg); err != nil {
					b.Fatal(err)
				}
				m, err := n.Receive(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(m.Payload()) < size {
					b.Fatalf("reply of %d bytes", len(m.Payload()))
				}
				sent++
			}
		})
	}
}

// BenchmarkHandshake measures creating a channel on one node: three Noise
// messages (five X25519 operations a side), two new workers per side, and
// Close. The listener, which keeps its responders, is replaced off the clock
// every 1000 channels.
func BenchmarkHandshake(b *testing.B) {
	n := newNode(b)
	var l *securechannel.Listener
	relisten := func() {
		if l != nil {
			l.Close()
		}
		var err error
		if l, err = securechannel.Listen(context.Background(), n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true}); err != nil {
			b.Fatal(err)
		}
	}
	relisten()
	defer func() { l.Close() }()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; i%1000 == 0 {
			b.StopTimer()
			relisten()
			b.StartTimer()
		}
		ch, err := securechannel.Create(ctx, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
		if err != nil {
			b.Fatal(err)
		}
		ch.Close()
	}
}
