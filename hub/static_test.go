package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

func TestStaticForwardingOffByDefault(t *testing.T) {
	_, addr := startHub(t, hub.Config{})
	c := newGoClient(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "printer", "", "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v: the service must not exist", err)
	}
}

func TestStaticForwarding(t *testing.T) {
	h, addr := startHub(t, hub.Config{StaticForwarding: true, ForwarderToken: "s3cret", ForwarderTokens: map[string]string{"vip": "v1p"}})
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
