package hub_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

func TestStaticForwardingOffByDefault(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	c := newGoClient(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "printer", "", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v: the service must not exist", err)
	}
}

func TestStaticForwarding(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{StaticForwarding: true, ForwarderToken: "s3cret", ForwarderTokens: map[string]string{"vip": "v1p"}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	receiver := func(tag string) *goClient {
		c := newGoClient(t, addr)
		c.node.StartWorker(ctx, "echoer", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
			body, _ := node.Body[string](m)
			return s.Send(ctx, m.Return(), tag+":"+body)
		}))
		return c
	}
	a, b := receiver("a"), receiver("b")
	if _, err := forwarding.RegisterStatic(ctx, a.node, routing.Route{a.hub}, "printer", "wrong", "echoer"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := forwarding.RegisterStatic(ctx, a.node, routing.Route{a.hub}, "bad name!", "s3cret", "echoer"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := forwarding.RegisterStatic(ctx, a.node, routing.Route{a.hub}, "vip", "s3cret", "echoer"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("per-name token not enforced: %v", err)
	}
	rf, err := forwarding.RegisterStatic(ctx, a.node, routing.Route{a.hub}, "printer", "s3cret", "echoer")
	if err != nil {
		t.Fatal(err)
	}
	if rf.RemoteAddress() != "forward_to_printer" {
		t.Fatalf("address %q", rf.RemoteAddress())
	}
	sender := newGoClient(t, addr)
	ask := func() string {
		t.Helper()
		if err := sender.node.Send(ctx, routing.Route{sender.hub, routing.LocalAddress("forward_to_printer")}, "hi"); err != nil {
			t.Fatal(err)
		}
		got, _, err := node.ReceiveBody[string](ctx, sender.node)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := ask(); got != "a:hi" {
		t.Fatalf("got %q", got)
	}
	// Re-registering moves the name; the old connection closing does not
	// remove it.
	if _, err := forwarding.RegisterStatic(ctx, b.node, routing.Route{b.hub}, "printer", "s3cret", "echoer"); err != nil {
		t.Fatal(err)
	}
	if got := ask(); got != "b:hi" {
		t.Fatalf("after move got %q", got)
	}
	a.tcp.Close()
	waitFor(t, 2*time.Second, "a's connection gone", func() bool { return h.Stats().TCP.Conns == 2 })
	if got := ask(); got != "b:hi" {
		t.Fatalf("after old connection closed got %q", got)
	}
	if h.Stats().Forwarders != 1 {
		t.Fatalf("forwarders %d", h.Stats().Forwarders)
	}
	// When the current connection closes, the name goes.
	b.tcp.Close()
	waitFor(t, 2*time.Second, "named forwarder removed", func() bool { return h.Stats().Forwarders == 0 })
}

// TestStaticMoveUnderLoad: re-registering a name while messages flow to it
// always succeeds, and messages that race the reply are delivered.
func TestStaticMoveUnderLoad(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{StaticForwarding: true})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	recv := newGoClient(t, addr)
	// At most 64 messages in flight: a steady stream, not a flood that
	// would (by design) make the hub drop messages, replies included.
	tokens := make(chan struct{}, 64)
	for range cap(tokens) {
		tokens <- struct{}{}
	}
	sink := make(chan struct{}, 1)
	recv.node.StartWorker(ctx, "sink", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		select {
		case tokens <- struct{}{}:
		default:
		}
		select {
		case sink <- struct{}{}:
		default:
		}
		return nil
	}))
	if _, err := forwarding.RegisterStatic(ctx, recv.node, routing.Route{recv.hub}, "busy", "", "sink"); err != nil {
		t.Fatal(err)
	}
	flood := newGoClient(t, addr)
	fctx, stopFlood := context.WithCancel(ctx)
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for {
			select {
			case <-tokens:
			case <-fctx.Done():
				return
			}
			flood.node.Send(fctx, routing.Route{flood.hub, routing.LocalAddress("forward_to_busy")}, "x")
		}
	}()
	select { // the flood is flowing
	case <-sink:
	case <-ctx.Done():
		t.Fatal("the flood never reached the sink")
	}
	for i := range 100 {
		rf, err := forwarding.RegisterStatic(ctx, recv.node, routing.Route{recv.hub}, "busy", "", "sink")
		if err != nil {
			t.Fatalf("re-registration %d under load: %v", i, err)
		}
		if rf.RemoteAddress() != "forward_to_busy" {
			t.Fatalf("address %q", rf.RemoteAddress())
		}
	}
	stopFlood()
	<-flooded
}

func TestForwarderLimits(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{MaxForwardersPerConn: 3, StaticForwarding: true})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := newGoClient(t, addr)
	for i := range 3 {
		if _, err := forwarding.Register(ctx, c.node, routing.Route{c.hub}, "x"); err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	// The fourth is refused (the 2021 service has no error reply: the
	// registrant hears nothing).
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer scancel()
	if _, err := forwarding.Register(sctx, c.node, routing.Route{c.hub}, "x"); err == nil {
		t.Fatal("a fourth forwarder was registered")
	}
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "n1", "", "x"); err != nil {
		t.Fatalf("named: %v", err)
	}
	for i := range 3 {
		_, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, fmt.Sprintf("m%d", i), "", "x")
		if i < 2 && err != nil {
			t.Fatalf("named %d: %v", i, err)
		}
		if i == 2 && !errors.Is(err, forwarding.ErrRefused) {
			t.Fatalf("fourth name: %v", err)
		}
	}
	if h.Stats().Forwarders != 6 {
		t.Fatalf("forwarders = %d, want 6", h.Stats().Forwarders)
	}
	// A registration whose return route is absurdly long is refused.
	long := newGoClient(t, addr)
	route := routing.Route{long.hub, routing.LocalAddress("forwarding_service")}
	mb, _ := long.node.OpenMailbox("")
	defer mb.Close()
	huge := routing.Route{mb.Address()}
	for range 100 {
		huge = huge.Append(routing.LocalAddress("0123456789abcdef0123456789abcdef"))
	}
	err := long.node.Route(ctx, routing.TransportMessage{Onward: route, Return: huge, Payload: []byte("\x08register")})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer rcancel()
	if _, err := mb.Receive(rctx); err == nil {
		t.Fatal("a registration with a 3 KB route was accepted")
	}
}

func TestMaintainStopsWhenRefused(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{StaticForwarding: true, ForwarderToken: "t"})
	c := newGoClient(t, addr)
	err := forwarding.Maintain(t.Context(), c.node, c.tcp, forwarding.MaintainConfig{Hub: addr, Destination: "x", Name: "n", Token: "wrong"})
	if !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("Maintain = %v, want ErrRefused", err)
	}
}
