package node_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// rewriter is a RouteRewriter that sends everything to route, unless
// decline is set.
type rewriter struct {
	route   routing.Route
	decline bool
	relayed atomic.Int64
}

func (w *rewriter) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	w.Relayed()
	tm := m.Transport()
	tm.Onward, _ = w.RewriteOnward(tm.Onward)
	return s.Forward(ctx, tm)
}

func (w *rewriter) RewriteOnward(routing.Route) (routing.Route, bool) { return w.route, !w.decline }
func (w *rewriter) Relayed()                                          { w.relayed.Add(1) }

type nopTransport struct{}

func (nopTransport) RouteMessage(context.Context, routing.TransportMessage) error { return nil }

func TestResolve(t *testing.T) {
	ctx := context.Background()
	n := node.New(node.Config{NoApp: true})
	defer n.Close()
	sink := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
	start := func(addr string, w node.Worker, inline bool) {
		t.Helper()
		if _, err := n.StartWorkerConfig(ctx, w, node.WorkerConfig{Addresses: []string{addr}, Inline: inline}); err != nil {
			t.Fatal(err)
		}
	}
	start("sink", sink, true)
	start("boxed", sink, false)
	local := routing.LocalAddress
	tcpHop := routing.TCPAddress("127.0.0.1:1")
	fwd := &rewriter{route: routing.Route{local("sink"), local("x")}}
	start("fwd", fwd, true)
	chain := &rewriter{route: routing.Route{local("fwd")}}
	start("chain", chain, true)
	toTCP := &rewriter{route: routing.Route{tcpHop, local("y")}}
	start("totcp", toTCP, true)
	loop := &rewriter{route: routing.Route{local("loop")}}
	start("loop", loop, true)
	start("declines", &rewriter{route: routing.Route{local("sink")}, decline: true}, true)
	start("toboxed", &rewriter{route: routing.Route{local("boxed")}}, true)
	start("toempty", &rewriter{}, true)

	r, ok := n.Resolve(routing.Route{local("chain"), local("ignored")})
	if !ok || !r.Onward.Equal(routing.Route{local("sink"), local("x")}) || r.Worker == nil {
		t.Fatalf("Resolve(chain) = %v, %v, %v", r.Onward, r.Worker, ok)
	}
	if got := n.Stats().Routed; got != 0 || fwd.relayed.Load() != 0 {
		t.Fatalf("Resolve had side effects: routed %d, relayed %d", got, fwd.relayed.Load())
	}
	n.Commit(&r)
	// Route would have counted chain, fwd and sink.
	if got := n.Stats().Routed; got != 3 || fwd.relayed.Load() != 1 || chain.relayed.Load() != 1 {
		t.Fatalf("after Commit: routed %d, relayed %d/%d; want 3, 1/1", got, chain.relayed.Load(), fwd.relayed.Load())
	}

	// A transport's hop: only with a transport registered for its type.
	if _, ok := n.Resolve(routing.Route{local("totcp")}); ok {
		t.Fatal("resolved to a type with no transport")
	}
	if err := n.RegisterTransport(routing.TCP, nopTransport{}); err != nil {
		t.Fatal(err)
	}
	r, ok = n.Resolve(routing.Route{local("totcp")})
	if !ok || r.Worker != nil || !r.Onward.Equal(toTCP.route) {
		t.Fatalf("Resolve(totcp) = %v, %v, %v", r.Onward, r.Worker, ok)
	}
	before := n.Stats().Routed
	n.Commit(&r)
	if got := n.Stats().Routed; got != before+2 {
		t.Fatalf("Commit to a transport counted %d, want 2", got-before)
	}

	for _, route := range []routing.Route{
		nil,
		{local("nobody")},
		{local("boxed")},    // a mailbox: its worker decides later
		{local("toboxed")},  // the same, after a rewrite
		{local("declines")}, // the rewriter says no
		{local("loop")},     // too many rewrites
		{local("toempty")},  // nothing after the rewrite
	} {
		if r, ok := n.Resolve(route); ok {
			t.Errorf("Resolve(%v) = %v, want false", route, r.Onward)
		}
	}

	if err := n.StopWorker(ctx, "fwd"); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Resolve(routing.Route{local("chain")}); ok {
		t.Error("resolved through a stopped worker")
	}
	n.Close()
	if _, ok := n.Resolve(routing.Route{local("sink")}); ok {
		t.Error("resolved on a closed node")
	}
}
