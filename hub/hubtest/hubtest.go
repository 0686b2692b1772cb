// Package hubtest runs in-process hubs for tests, as net/http/httptest
// runs HTTP servers: a hub.Hub served on a 127.0.0.1 listener until the
// test ends. Only tests may import it.
package hubtest

import (
	"errors"
	"net"
	"testing"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Start runs a hub with cfg on a new 127.0.0.1:0 listener and returns it
// with its address. The hub is closed, and Serve waited for, when the test
// and its subtests end (t.Cleanup), so no goroutine of it outlives the test
// (goleak finds none); the test fails if Serve returns anything but
// hub.ErrClosed.
func Start(t testing.TB, cfg hub.Config) (*hub.Hub, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, cfg, ln), ln.Addr().String()
}

// Serve runs a hub with cfg on ln until the test ends, as Start does; it is
// for tests that wrap the listener (to record or fault its connections).
// ln is closed by the hub, or here when hub.New fails.
func Serve(t testing.TB, cfg hub.Config, ln net.Listener) *hub.Hub {
	t.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(ln) }()
	t.Cleanup(func() {
		h.Close()
		if err := <-served; !errors.Is(err, hub.ErrClosed) {
			t.Errorf("hubtest: hub Serve returned %v, want hub.ErrClosed", err)
		}
	})
	return h
}

// Connect returns a new node with a TCP transport connected to the hub at
// hubAddr, and the hub's address on that transport. The transport and the
// node are closed when the test ends.
func Connect(t testing.TB, hubAddr string) (*node.Node, *tcp.Transport, routing.Address) {
	t.Helper()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); n.Close() })
	a, err := tr.Connect(t.Context(), hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	return n, tr, a
}
