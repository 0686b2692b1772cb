package portal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// recorder keeps every byte a hub reads and writes, to check what a relay
// can see.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) add(b []byte) {
	r.mu.Lock()
	r.buf.Write(b)
	r.mu.Unlock()
}

func (r *recorder) contains(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Contains(r.buf.Bytes(), b)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Len()
}

type recListener struct {
	net.Listener
	rec *recorder
}

func (l recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recConn{Conn: c, rec: l.rec}, nil
}

type recConn struct {
	net.Conn
	rec *recorder
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.rec.add(b[:n])
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	c.rec.add(b)
	return c.Conn.Write(b)
}

// startHub runs a hub on 127.0.0.1; rec, when not nil, records its bytes.
func startHub(t testing.TB, cfg hub.Config, rec *recorder) (string, *hub.Hub) {
	t.Helper()
	if cfg.TCP.QueueFullWait == 0 {
		// A patient hub, unless the test chooses otherwise: portals
		// sharing a connection may be granted more than the hub's send
		// queue holds, and by default the hub drops a message that waited
		// a second for room towards a node, which a node starved of CPU
		// on a loaded machine (-race, other tests) now and then causes;
		// the portal then fails cleanly, as it must (TestLossDetected and
		// TestSlowTarget check such failures), but these tests are about
		// what succeeds.
		cfg.TCP.QueueFullWait = time.Minute
	}
	if rec == nil {
		h, addr := hubtest.Start(t, cfg)
		return addr, h
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), hubtest.Serve(t, cfg, recListener{ln, rec})
}

// startOutlet runs an outlet behind a forwarder at the hub and returns the
// route to it.
func startOutlet(t testing.TB, hubAddr string, cfg portal.OutletConfig) (routing.Route, *portal.Outlet, *node.Node) {
	t.Helper()
	n, _, h := hubtest.Connect(t, hubAddr)
	o, err := portal.NewOutlet(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	rf, err := forwarding.Register(t.Context(), n, routing.Route{h}, o.Address().Value)
	if err != nil {
		t.Fatal(err)
	}
	return rf.Route(), o, n
}

// startInlet runs an inlet on 127.0.0.1 and returns its address.
func startInlet(t testing.TB, n *node.Node, cfg portal.InletConfig) (string, *portal.Inlet) {
	t.Helper()
	in, err := portal.NewInlet(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := portal.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- in.Serve(ln) }()
	t.Cleanup(func() {
		in.Close()
		if err := <-served; !errors.Is(err, portal.ErrClosed) {
			t.Errorf("inlet Serve: %v", err)
		}
	})
	return ln.Addr().String(), in
}

// serveTCP runs handle for every connection to a 127.0.0.1 listener.
func serveTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	// The accept loop counts in wg too: a handler is added while the
	// count is above zero, never concurrently with a Wait at zero (which
	// the race detector reports).
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); handle(c) })
		}
	})
	return ln.Addr().String()
}

// echoTarget echoes until EOF.
func echoTarget(t testing.TB) string {
	return serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// plainPair is an outlet to target behind the hub and an inlet to it.
func plainPair(t testing.TB, hubAddr, target string, ocfg portal.OutletConfig, icfg portal.InletConfig) (string, *portal.Inlet, *portal.Outlet) {
	t.Helper()
	ocfg.Target = target
	route, o, _ := startOutlet(t, hubAddr, ocfg)
	n, _, _ := hubtest.Connect(t, hubAddr)
	icfg.Route = route
	addr, in := startInlet(t, n, icfg)
	return addr, in, o
}

// securePair is the same inside a secure channel: the outlet's node runs a
// channel listener behind the hub's forwarder, the inlet creates a channel
// to it, pinning its key, and reaches the outlet inside.
func securePair(t testing.TB, hubAddr, target string, ocfg portal.OutletConfig, icfg portal.InletConfig) (string, *portal.Inlet, *portal.Outlet) {
	t.Helper()
	ocfg.Target = target
	on, _, h := hubtest.Connect(t, hubAddr)
	l, err := securechannel.Listen(t.Context(), on, "secure_channel", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if ocfg.Authorize == nil {
		ocfg.Authorize = func(m *node.Message) bool {
			first, _ := m.Return().Next()
			_, ok := l.Channel(first)
			return ok
		}
	}
	o, err := portal.NewOutlet(on, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	rf, err := forwarding.Register(t.Context(), on, routing.Route{h}, "secure_channel")
	if err != nil {
		t.Fatal(err)
	}
	n, _, _ := hubtest.Connect(t, hubAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ch, err := securechannel.Create(ctx, n, rf.Route(), securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	if len(icfg.Route) == 0 && icfg.RouteFunc == nil {
		icfg.Route = routing.Route{ch.Address(), o.Address()}
	}
	addr, in := startInlet(t, n, icfg)
	return addr, in, o
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
