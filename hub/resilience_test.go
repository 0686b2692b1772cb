package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/internal/faultnet"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestFaultsThroughProxy puts a fault-injecting proxy between a forwarding
// receiver and the hub, and checks that after each fault traffic resumes
// within 10 seconds of the link returning.
func TestFaultsThroughProxy(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	proxy, err := faultnet.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	ctx, cancel := context.WithCancel(t.Context())
	// The receiver: an echoer behind a maintained forwarder, via the proxy.
	rn := node.New(node.Config{})
	rt, _ := tcp.New(rn, tcp.Config{})
	rn.StartWorker(ctx, "echoer", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		return s.Send(ctx, m.Return(), node.Raw(m.Payload()))
	}))
	routes := make(chan routing.Route, 10)
	maintained := make(chan error, 1)
	go func() {
		maintained <- forwarding.Maintain(ctx, rn, rt, forwarding.MaintainConfig{
			Hub:             proxy.Addr(),
			Destination:     "echoer",
			Backoff:         backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second},
			RegisterTimeout: 2 * time.Second,
			OnRegistered:    func(r routing.Route) { routes <- r },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-maintained
		rt.Close()
		rn.Close()
	})

	sender := newGoClient(t, addr)
	nextRoute := func(within time.Duration) routing.Route {
		t.Helper()
		select {
		case r := <-routes:
			return r
		case <-time.After(within):
			t.Fatalf("no registration within %v", within)
			return nil
		}
	}
	// roundTrip sends through the hub to the forwarder, retrying until a
	// reply arrives or the deadline passes (the first attempts may race
	// with the registration).
	roundTrip := func(alias string, msg string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(within)
		for time.Now().Before(deadline) {
			actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
			err := sender.node.Send(actx, routing.Route{sender.hub, routing.LocalAddress(alias)}, msg)
			if err == nil {
				var m *node.Message
				if m, err = sender.node.Receive(actx); err == nil {
					if got, _ := node.Body[string](m); got == msg {
						acancel()
						return time.Since(start)
					}
				}
			}
			acancel()
		}
		t.Fatalf("no reply to %q within %v", msg, within)
		return 0
	}
	alias := func(r routing.Route) string { a, _ := r.Recipient(); return a.Value }

	r := nextRoute(5 * time.Second)
	roundTrip(alias(r), "before faults", 5*time.Second)

	t.Run("cut", func(t *testing.T) {
		proxy.Cut()
		waitFor(t, 2*time.Second, "hub drops the cut forwarder", func() bool { return h.Stats().Forwarders == 0 })
		proxy.Restore()
		restored := time.Now()
		r = nextRoute(10 * time.Second)
		roundTrip(alias(r), "after cut", 10*time.Second-time.Since(restored))
		t.Logf("traffic resumed %v after the link returned", time.Since(restored))
	})
	t.Run("delay", func(t *testing.T) {
		proxy.SetDelay(100 * time.Millisecond)
		d := roundTrip(alias(r), "delayed", 10*time.Second)
		proxy.SetDelay(0)
		if d < 200*time.Millisecond {
			t.Errorf("round trip %v through a 100ms-each-way delay", d)
		}
	})
	t.Run("throttle", func(t *testing.T) {
		proxy.SetRate(2000)
		roundTrip(alias(r), "throttled", 10*time.Second)
		proxy.SetRate(0)
	})
	t.Run("blackout", func(t *testing.T) {
		proxy.Blackout()
		// Messages sent now are held, not lost, by the partition.
		if err := sender.node.Send(ctx, routing.Route{sender.hub, routing.LocalAddress(alias(r))}, "held"); err != nil {
			t.Fatal(err)
		}
		proxy.Restore()
		restored := time.Now()
		m, err := sender.node.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := node.Body[string](m); got != "held" {
			t.Fatalf("got %q", got)
		}
		if time.Since(restored) > 10*time.Second {
			t.Fatal("held message took more than 10s after the link returned")
		}
	})
}
