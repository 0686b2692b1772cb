package forwarding

import (
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// TestForwarderRewrite: a forwarder tells a transport where a message goes
// (node.RouteRewriter) and, relayed without HandleMessage, still counts as
// used for the idle timeout.
func TestForwarderRewrite(t *testing.T) {
	route := routing.Route{routing.LocalAddress("conn"), routing.LocalAddress("app")}
	f := &forwarder{route: route, timed: true}
	var _ node.RouteRewriter = f
	got, ok := f.RewriteOnward(routing.Route{routing.LocalAddress("fwd"), routing.LocalAddress("rest")})
	if !ok || !got.Equal(route) {
		t.Fatalf("RewriteOnward = %v, %v; want %v, true", got, ok, route)
	}
	f.lastUsed.Store(1)
	f.Relayed()
	if f.lastUsed.Load() == 1 {
		t.Fatal("Relayed did not mark the forwarder used")
	}
}

// TestStaticForwarderRewrite: a named forwarder declines while a
// registration's gate holds its messages.
func TestStaticForwarderRewrite(t *testing.T) {
	route := routing.Route{routing.LocalAddress("conn"), routing.LocalAddress("app")}
	f := &staticForwarder{}
	f.route.Store(&route)
	var _ node.RouteRewriter = f
	if got, ok := f.RewriteOnward(nil); !ok || !got.Equal(route) {
		t.Fatalf("RewriteOnward = %v, %v", got, ok)
	}
	gate := make(chan struct{})
	f.gate.Store(&gate)
	if _, ok := f.RewriteOnward(nil); ok {
		t.Fatal("rewrote while the gate is shut")
	}
	close(gate)
	if _, ok := f.RewriteOnward(nil); !ok {
		t.Fatal("declined with the gate open")
	}
}
