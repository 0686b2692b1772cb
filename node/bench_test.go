package node_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// BenchmarkLocalRoundTrip: app → echoer → app, one message in flight.
func BenchmarkLocalRoundTrip(b *testing.B) {
	ctx := context.Background()
	n := node.New(node.Config{})
	defer n.Close()
	n.StartWorker(ctx, "echoer", echoer())
	route := routing.MustParseRoute("echoer")
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
			b.Fatal(err)
		}
		if _, err := n.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalThroughput: one worker sends to another as fast as the
// mailbox takes it; reports messages per second.
func BenchmarkLocalThroughput(b *testing.B) {
	ctx := context.Background()
	n := node.New(node.Config{})
	defer n.Close()
	done := make(chan struct{})
	count, want := 0, 0
	n.StartWorker(ctx, "sink", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		if count++; count == want {
			close(done)
		}
		return nil
	}))
	route := routing.MustParseRoute("sink")
	payload := node.Raw(make([]byte, 100))
	want = b.N
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := n.Send(ctx, route, payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRouteInlineParallel: every goroutine routes to an inline worker
// of its own, as a hub's connection readers do; the node's routed count is
// kept per worker, so no cache line is shared by all of them.
func BenchmarkRouteInlineParallel(b *testing.B) {
	ctx := context.Background()
	n := node.New(node.Config{NoApp: true})
	defer n.Close()
	var next atomic.Int32
	sink := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		name := fmt.Sprintf("w%d", next.Add(1))
		if _, err := n.StartWorkerConfig(ctx, sink, node.WorkerConfig{Addresses: []string{name}, Inline: true}); err != nil {
			b.Error(err)
			return
		}
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress(name)}, Payload: []byte("x")}
		for pb.Next() {
			if err := n.Route(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
