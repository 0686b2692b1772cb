package securechannel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/node"
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

// BenchmarkChannelThroughput measures one channel carrying 60 KiB messages
// (a portal's chunk) one way, from the node's app mailbox through the
// channel to a mailbox on the other end, with a sending goroutine and a
// receiving one: encryption, decryption and whatever hand-offs the channel
// ends add. Both directions are measured, from the initiator and from the
// responder. A new channel is made, off the clock, before the counter runs
// out.
func BenchmarkChannelThroughput(b *testing.B) {
	const size = 60 << 10
	for _, dir := range []string{"initiator", "responder"} {
		b.Run("from="+dir, func(b *testing.B) {
			n := newNode(b)
			l := listen(b, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
			sink, err := n.OpenMailbox("")
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			ctx := context.Background()
			payload := node.Raw(make([]byte, size))
			var ch *securechannel.Channel
			var route routing.Route
			fresh := func() {
				if ch != nil {
					ch.Close()
				}
				ch = create(b, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
				route = routing.Route{ch.Address(), sink.Address()}
				if dir == "responder" {
					// The first message's return route starts with the
					// responder's address_local: send back through it.
					if err := n.Send(ctx, route, node.Raw(nil)); err != nil {
						b.Fatal(err)
					}
					m, err := sink.Receive(ctx)
					if err != nil {
						b.Fatal(err)
					}
					route = routing.Route{m.Return()[0], sink.Address()}
				}
			}
			fresh()
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for left := b.N; left > 0; {
				batch := min(left, 60000)
				left -= batch
				errc := make(chan error, 1)
				go func() {
					for range batch {
						if err := n.Send(ctx, route, payload); err != nil {
							errc <- err
							return
						}
					}
					errc <- nil
				}()
				for range batch {
					m, err := sink.Receive(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if len(m.Payload()) != size {
						b.Fatalf("message of %d bytes", len(m.Payload()))
					}
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				if left > 0 {
					b.StopTimer()
					fresh()
					b.StartTimer()
				}
			}
		})
	}
}
