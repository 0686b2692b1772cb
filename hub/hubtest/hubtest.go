// Package hubtest runs in-process hubs for tests, as net/http/httptest
// runs HTTP servers: a hub.Hub served on a 127.0.0.1 listener until the
// test ends. Only tests may import it.
package hubtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

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

// TryEcho connects a fresh node to the hub node at addr, sends "hello" to
// its echo_service and waits for the reply, all within ctx. It returns the
// first error; the node and its connection are closed before it returns.
func TryEcho(ctx context.Context, addr string) error {
	n := node.New(node.Config{})
	defer n.Close()
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	hop, err := tr.Connect(ctx, addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	if err := n.Send(ctx, routing.Route{hop, routing.LocalAddress("echo_service")}, "hello"); err != nil {
		return err
	}
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("echo from %s: %w", addr, err)
	}
	if got, err := node.Body[string](m); err != nil || got != "hello" {
		return fmt.Errorf("echo from %s: got %q, %v; want hello", addr, got, err)
	}
	return nil
}

// Echo is TryEcho within 5 s that fails the test on error.
func Echo(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := TryEcho(ctx, addr); err != nil {
		t.Fatal(err)
	}
}
