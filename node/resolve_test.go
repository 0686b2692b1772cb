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

// TestRecheck: a resolution stays valid while nothing it went through has
// changed, and not a moment longer: a stopped worker (rewriter or last),
// a rewriter that declines or returns another route, a worker replaced at
// the same address, a transport unregistered, a closed node.
func TestRecheck(t *testing.T) {
	ctx := context.Background()
	local := routing.LocalAddress
	sink := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
	setup := func(t *testing.T) (*node.Node, *rewriter, *rewriter, routing.Route) {
		n := node.New(node.Config{NoApp: true})
		t.Cleanup(func() { n.Close() })
		if _, err := n.StartWorkerConfig(ctx, sink, node.WorkerConfig{Addresses: []string{"sink"}, Inline: true}); err != nil {
			t.Fatal(err)
		}
		fwd := &rewriter{route: routing.Route{local("sink"), local("x")}}
		chain := &rewriter{route: routing.Route{local("fwd")}}
		for addr, w := range map[string]node.Worker{"fwd": fwd, "chain": chain} {
			if _, err := n.StartWorkerConfig(ctx, w, node.WorkerConfig{Addresses: []string{addr}, Inline: true}); err != nil {
				t.Fatal(err)
			}
		}
		return n, chain, fwd, routing.Route{local("chain"), local("ignored")}
	}
	check := func(t *testing.T, n *node.Node, onward routing.Route, change func(), want bool) {
		t.Helper()
		r, ok := n.Resolve(onward)
		if !ok {
			t.Fatal("not resolved")
		}
		if !n.Recheck(&r, onward) {
			t.Fatal("a fresh resolution fails its recheck")
		}
		change()
		if got := n.Recheck(&r, onward); got != want {
			t.Fatalf("Recheck = %v, want %v", got, want)
		}
	}
	t.Run("unchanged", func(t *testing.T) {
		n, _, _, onward := setup(t)
		check(t, n, onward, func() {}, true)
	})
	t.Run("another onward slice", func(t *testing.T) {
		n, _, _, onward := setup(t)
		r, _ := n.Resolve(onward)
		if n.Recheck(&r, routing.Route{local("chain"), local("ignored")}) {
			t.Fatal("rechecked for another route")
		}
	})
	t.Run("rewriter stops", func(t *testing.T) {
		n, _, _, onward := setup(t)
		check(t, n, onward, func() { n.StopWorker(ctx, "fwd") }, false)
	})
	t.Run("last stops", func(t *testing.T) {
		n, _, _, onward := setup(t)
		check(t, n, onward, func() { n.StopWorker(ctx, "sink") }, false)
	})
	t.Run("replaced", func(t *testing.T) {
		n, _, _, onward := setup(t)
		check(t, n, onward, func() {
			n.StopWorker(ctx, "sink")
			if _, err := n.StartWorkerConfig(ctx, sink, node.WorkerConfig{Addresses: []string{"sink"}, Inline: true}); err != nil {
				t.Fatal(err)
			}
		}, false)
	})
	t.Run("rewriter declines", func(t *testing.T) {
		n, chain, _, onward := setup(t)
		check(t, n, onward, func() { chain.decline = true }, false)
	})
	t.Run("rewriter moves", func(t *testing.T) {
		n, _, fwd, onward := setup(t)
		// The same addresses in another slice: a new route, as a named
		// forwarder's re-registration makes.
		check(t, n, onward, func() { fwd.route = routing.Route{local("sink"), local("x")} }, false)
	})
	t.Run("node closed", func(t *testing.T) {
		n, _, _, onward := setup(t)
		check(t, n, onward, func() { n.Close() }, false)
	})
	t.Run("transport unregistered", func(t *testing.T) {
		n, _, fwd, onward := setup(t)
		fwd.route = routing.Route{routing.TCPAddress("127.0.0.1:1"), local("y")}
		if err := n.RegisterTransport(routing.TCP, nopTransport{}); err != nil {
			t.Fatal(err)
		}
		check(t, n, onward, func() { n.UnregisterTransport(routing.TCP) }, false)
	})
}

// BenchmarkResolve: where a message through a forwarder goes, found with
// the registry lookups (resolve) or by checking a resolution found before
// (recheck, as a transport relaying a stream of frames does).
func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	local := routing.LocalAddress
	n := node.New(node.Config{NoApp: true})
	defer n.Close()
	sink := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
	n.StartWorkerConfig(ctx, sink, node.WorkerConfig{Addresses: []string{"0123456789abcdef"}, Inline: true})
	n.StartWorkerConfig(ctx, &rewriter{route: routing.Route{local("0123456789abcdef"), local("app")}}, node.WorkerConfig{Addresses: []string{"fedcba9876543210"}, Inline: true})
	onward := routing.Route{local("fedcba9876543210")}
	b.Run("resolve", func(b *testing.B) {
		for b.Loop() {
			if _, ok := n.Resolve(onward); !ok {
				b.Fatal("not resolved")
			}
		}
	})
	b.Run("recheck", func(b *testing.B) {
		r, _ := n.Resolve(onward)
		for b.Loop() {
			if !n.Recheck(&r, onward) {
				b.Fatal("not rechecked")
			}
		}
	})
}

// TestCommitN: k messages relayed together count k times, and each
// rewriter hears of them once; a failure at the last worker counts as that
// worker's error, one at a transport's hop is the caller's to report.
func TestCommitN(t *testing.T) {
	ctx := context.Background()
	local := routing.LocalAddress
	n := node.New(node.Config{NoApp: true})
	defer n.Close()
	sink := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
	if _, err := n.StartWorkerConfig(ctx, sink, node.WorkerConfig{Addresses: []string{"sink"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	fwd := &rewriter{route: routing.Route{local("sink")}}
	totcp := &rewriter{route: routing.Route{routing.TCPAddress("127.0.0.1:1"), local("y")}}
	for addr, w := range map[string]node.Worker{"fwd": fwd, "totcp": totcp} {
		if _, err := n.StartWorkerConfig(ctx, w, node.WorkerConfig{Addresses: []string{addr}, Inline: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.RegisterTransport(routing.TCP, nopTransport{}); err != nil {
		t.Fatal(err)
	}
	r, ok := n.Resolve(routing.Route{local("fwd")})
	if !ok {
		t.Fatal("not resolved")
	}
	n.CommitN(&r, 5)
	if got := n.Stats().Routed; got != 10 || fwd.relayed.Load() != 1 {
		t.Fatalf("CommitN(5): routed %d, relayed %d; want 10, 1", got, fwd.relayed.Load())
	}
	n.CommitN(&r, 0)
	if got := n.Stats().Routed; got != 10 || fwd.relayed.Load() != 1 {
		t.Fatalf("CommitN(0): routed %d, relayed %d; want 10, 1", got, fwd.relayed.Load())
	}
	if !n.Failed(&r, context.DeadlineExceeded) || n.Stats().WorkerErrors != 1 {
		t.Fatalf("Failed at a worker: %d worker errors, want 1", n.Stats().WorkerErrors)
	}
	// A transport's hop after a rewriter: the rewriter's HandleMessage
	// would have got the error back.
	r, ok = n.Resolve(routing.Route{local("totcp")})
	if !ok {
		t.Fatal("not resolved")
	}
	if !n.Failed(&r, context.DeadlineExceeded) || n.Stats().WorkerErrors != 2 {
		t.Fatalf("Failed at a transport after a rewriter: %d worker errors, want 2", n.Stats().WorkerErrors)
	}
	// A transport's hop without one: Route's caller would have got it.
	r, ok = n.Resolve(routing.Route{routing.TCPAddress("127.0.0.1:1"), local("y")})
	if !ok {
		t.Fatal("not resolved")
	}
	if n.Failed(&r, context.DeadlineExceeded) || n.Stats().WorkerErrors != 2 {
		t.Fatalf("Failed at a transport: %d worker errors, want 2", n.Stats().WorkerErrors)
	}
}
