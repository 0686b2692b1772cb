package forwarding_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// TestStaticNewNameReachableWhenReplied: the service replied to a new
// name's registration and only then started forward_to_NAME, so a message
// sent to the name as soon as the reply was out found no such address
// (dropped, and counted against the sender as a probe). Under load the
// window was wide enough to lose the first 64 messages of a stream (hub's
// TestStaticMoveUnderLoad failed about once in 80 runs). Now the address
// exists before the reply is sent; a message to it waits until the reply
// is queued, and is then delivered.
func TestStaticNewNameReachableWhenReplied(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := forwarding.StartStatic(ctx, n, forwarding.StaticConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	replied, release := make(chan struct{}), make(chan struct{})
	delivered := make(chan string, 1)
	// The registrant is inline: the service's reply runs it in the
	// registration's goroutine, which it holds until released, so the
	// test stands between the reply and whatever the service does next.
	_, err = n.StartWorkerConfig(ctx, node.HandlerFunc(func(ctx context.Context, _ node.Sender, m *node.Message) error {
		body, _ := node.Body[string](m)
		if body == "printer" {
			close(replied)
			<-release
			return nil
		}
		delivered <- body
		return nil
	}), node.WorkerConfig{Addresses: []string{"registrant"}, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	registered := make(chan error, 1)
	go func() {
		registered <- n.Route(ctx, routing.TransportMessage{Version: routing.Version,
			Onward: routing.Route{routing.LocalAddress(forwarding.StaticServiceAddress)}, Return: routing.Route{routing.LocalAddress("registrant")},
			Payload: bare.AppendString(nil, "printer")})
	}()
	select {
	case <-replied:
	case <-ctx.Done():
		t.Fatal("no registration reply")
	}
	sent := make(chan error, 1)
	go func() {
		sent <- n.Route(ctx, routing.TransportMessage{Version: routing.Version,
			Onward: routing.Route{routing.LocalAddress(forwarding.StaticPrefix + "printer")}, Return: routing.Route{routing.LocalAddress("sender")},
			Payload: bare.AppendString(nil, "secret document")})
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("a message sent once the reply was out: %v", err)
		}
	case <-time.After(100 * time.Millisecond):
		// Waiting at the gate, as it should until the reply is queued.
	}
	close(release)
	if err := <-registered; err != nil {
		t.Fatalf("registration: %v", err)
	}
	select {
	case got := <-delivered:
		if got != "secret document" {
			t.Fatalf("delivered %q", got)
		}
	case <-ctx.Done():
		t.Fatal("the message was not delivered")
	}
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	if s.Forwarders() != 1 {
		t.Fatalf("forwarders %d, want 1", s.Forwarders())
	}
}

// TestStaticLaterMoveWins: a registration whose reply was out but whose
// publication was late took the name back from a later one that moved it
// with the token (hub TestNamedForwardingTokens flaked: "after the move
// got old:doc"). The later registration now keeps the name.
func TestStaticLaterMoveWins(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := forwarding.StartStatic(ctx, n, forwarding.StaticConfig{
		TokenHashes: map[string][32]byte{"printer": sha256.Sum256([]byte("printer-token"))}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	replied, release := make(chan struct{}), make(chan struct{})
	got := make(chan string, 2)
	worker := func(addr string, hold bool) {
		t.Helper()
		first := true
		_, err := n.StartWorkerConfig(ctx, node.HandlerFunc(func(ctx context.Context, _ node.Sender, m *node.Message) error {
			body, _ := node.Body[string](m)
			if first {
				first = false
				if hold {
					close(replied)
					<-release
				}
				return nil
			}
			got <- addr + ":" + body
			return nil
		}), node.WorkerConfig{Addresses: []string{addr}, Inline: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	worker("old", true)
	worker("new", false)
	register := func(from string) error {
		return n.Route(ctx, routing.TransportMessage{Version: routing.Version,
			Onward: routing.Route{routing.LocalAddress(forwarding.StaticServiceAddress)}, Return: routing.Route{routing.LocalAddress(from)},
			Payload: bare.AppendString(nil, "printer:printer-token")})
	}
	oldDone := make(chan error, 1)
	go func() { oldDone <- register("old") }()
	<-replied // old's reply is out, its publication held back
	if err := register("new"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-oldDone; err != nil {
		t.Fatal(err)
	}
	if err := n.Route(ctx, routing.TransportMessage{Version: routing.Version,
		Onward: routing.Route{routing.LocalAddress(forwarding.StaticPrefix + "printer")}, Return: routing.Route{routing.LocalAddress("sender")},
		Payload: bare.AppendString(nil, "doc")}); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != "new:doc" {
			t.Fatalf("after the later move the document went to %q", g)
		}
	case <-ctx.Done():
		t.Fatal("not delivered")
	}
}
