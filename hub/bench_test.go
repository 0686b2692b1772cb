package hub_test

import (
	"context"
	"testing"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

type benchClient struct {
	node *node.Node
	tcp  *tcp.Transport
	hub  routing.Address
}

func benchSetup(b *testing.B) (string, func() *benchClient) {
	_, hubAddr := hubtest.Start(b, hub.Config{})
	return hubAddr, func() *benchClient {
		n := node.New(node.Config{})
		tr, _ := tcp.New(n, tcp.Config{})
		b.Cleanup(func() { tr.Close(); n.Close() })
		a, err := tr.Connect(context.Background(), hubAddr)
		if err != nil {
			b.Fatal(err)
		}
		return &benchClient{n, tr, a}
	}
}

// BenchmarkEchoRoundTrip: one message in flight to the hub's echo_service
// over loopback TCP; ns/op is the round-trip latency.
func BenchmarkEchoRoundTrip(b *testing.B) {
	_, client := benchSetup(b)
	c := client()
	ctx := context.Background()
	route := routing.Route{c.hub, routing.LocalAddress("echo_service")}
	payload := node.Raw(make([]byte, 100))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.node.Send(ctx, route, payload); err != nil {
			b.Fatal(err)
		}
		if _, err := c.node.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardThroughput: a sender pipelines 100-byte messages through
// the hub to a forwarder and a receiving node (one-way); reports msgs/s.
func BenchmarkForwardThroughput(b *testing.B) {
	_, client := benchSetup(b)
	ctx := context.Background()
	recv := client()
	done := make(chan struct{})
	count, want := 0, 0
	recv.node.StartWorker(ctx, "sink", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		if count++; count == want {
			close(done)
		}
		return nil
	}))
	rf, err := forwarding.Register(ctx, recv.node, routing.Route{recv.hub}, "sink")
	if err != nil {
		b.Fatal(err)
	}
	send := client()
	route := routing.Route{send.hub, routing.LocalAddress(rf.RemoteAddress())}
	payload := node.Raw(make([]byte, 100))
	want = b.N
	b.SetBytes(100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := send.node.Send(ctx, route, payload); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
