package portal_test

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// TestSecureSealInPlace: through a secure channel behind a hub, both
// portals give the memory of their full reads up to the channel
// (node.WithPayloadRoom), which seals them where they lie; the bytes of
// writes of mixed sizes, one way and the other (an echo), arrive whole and
// in order (SHA-256 of each direction), with the flow-control extension
// (the reader reuses a buffer once the peer's Credit proves it written)
// and without (a 2021 peer: never reused).
func TestSecureSealInPlace(t *testing.T) {
	for _, noExt := range []bool{false, true} {
		name := "extension"
		if noExt {
			name = "2021"
		}
		t.Run(name, func(t *testing.T) {
			hubAddr, _ := startHub(t, hub.Config{}, nil)
			opts := portal.Options{NoExtension: noExt}
			on, _, h := hubtest.Connect(t, hubAddr)
			l, err := securechannel.Listen(t.Context(), on, "secure_channel", securechannel.ListenerConfig{AcceptAnyInitiator: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			o, err := portal.NewOutlet(on, portal.OutletConfig{Target: echoTarget(t), Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			rf, err := forwarding.Register(t.Context(), on, routing.Route{h}, "secure_channel")
			if err != nil {
				t.Fatal(err)
			}
			n, _, _ := hubtest.Connect(t, hubAddr)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			ch, err := securechannel.Create(ctx, n, rf.Route(), securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ch.Close() })
			addr, _ := startInlet(t, n, portal.InletConfig{Route: routing.Route{ch.Address(), o.Address()}, Options: opts})

			c := dial(t, addr)
			const total = 8 << 20
			rng := rand.New(rand.NewPCG(1, uint64(len(name))))
			sent := sha256.New()
			errs := make(chan error, 1)
			go func() {
				buf := make([]byte, 200<<10)
				left := total
				for left > 0 {
					// Mixed sizes: single bytes, short requests, a little
					// over smallRead, whole chunks and more.
					k := min(left, []int{1, 100, 4<<10 + 1, 60 << 10, 200 << 10}[rng.IntN(5)])
					for i := range buf[:k] {
						buf[i] = byte(rng.Uint32())
					}
					sent.Write(buf[:k])
					if _, err := c.Write(buf[:k]); err != nil {
						errs <- err
						return
					}
					left -= k
				}
				errs <- nil
			}()
			got := sha256.New()
			if _, err := io.CopyN(got, c, total); err != nil {
				t.Fatal(err)
			}
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			if sent.Sum(nil) == nil || string(sent.Sum(nil)) != string(got.Sum(nil)) {
				t.Fatal("the bytes echoed differ from the bytes written")
			}
			c.(*net.TCPConn).CloseWrite()
			if k, err := c.Read(make([]byte, 1)); k != 0 || err != io.EOF {
				t.Fatalf("after the echo: %d bytes, %v; want EOF", k, err)
			}
			t.Logf("sealed in place: inlet side %d of %d, outlet side %d of %d", ch.Stats().SealedInPlace, ch.Stats().Sent, l.Stats().SealedInPlace, l.Stats().Sent)
			// Both ends sealed in place: the inlet's side (the initiator)
			// and the outlet's (the listener's responder).
			if st := ch.Stats(); st.SealedInPlace == 0 || st.SealedInPlace > st.Sent {
				t.Errorf("inlet side: %d of %d messages sealed in place", st.SealedInPlace, st.Sent)
			}
			if st := l.Stats(); st.SealedInPlace == 0 || st.SealedInPlace > st.Sent {
				t.Errorf("outlet side: %d of %d messages sealed in place", st.SealedInPlace, st.Sent)
			}
			if st := ch.Stats(); st.DecryptFailures+st.Replays+st.NonceExhausted != 0 {
				t.Errorf("inlet side: %+v", st)
			}
			if st := l.Stats(); st.DecryptFailures+st.Replays+st.NonceExhausted != 0 {
				t.Errorf("outlet side: %+v", st)
			}
		})
	}
}
