package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func vectorBytes(name string) ([]byte, error) {
	return vectorfile.Bytes(filepath.Join("testdata", name+".hex"))
}

func vector(t *testing.T, name string) []byte {
	t.Helper()
	b, err := vectorBytes(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goNode is a node with a TCP transport.
type goNode struct {
	node *node.Node
	tcp  *tcp.Transport
}

func newGoNode(t *testing.T) *goNode {
	t.Helper()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); n.Close() })
	return &goNode{n, tr}
}

// listen serves the node's transport on 127.0.0.1 and returns the address.
func (g *goNode) listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.tcp.Serve(ln)
	return ln.Addr().String()
}

func echoer() node.Worker {
	return node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		return s.Send(ctx, m.Return(), node.Raw(m.Payload()))
	})
}

// rawListener accepts one connection, as a Rust peer would.
func rawListener(t *testing.T) (addr string, accept func() net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() net.Conn {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func port(t *testing.T, a net.Addr) string {
	t.Helper()
	_, p, _ := net.SplitHostPort(a.String())
	if len(p) != 5 {
		t.Skipf("ephemeral port %s is not 5 digits; the vectors assume 5", p)
	}
	return p
}

// TestClientEchoBytes: a Go client puts exactly the bytes of the 2021 Rust
// echo client on the wire, and understands the Rust server's reply.
func TestClientEchoBytes(t *testing.T) {
	ctx := t.Context()
	addr, accept := rawListener(t)
	g := newGoNode(t)
	hub, err := g.tcp.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if hub != routing.TCPAddress(addr) {
		t.Fatalf("Connect = %v", hub)
	}
	if err := g.node.Send(ctx, routing.Route{hub, routing.LocalAddress("echo_service")}, "Hello you over there!"); err != nil {
		t.Fatal(err)
	}
	srv := accept()
	if got, want := readFrame(t, srv), vector(t, "capture-echo-0.4.0-client-to-server"); !bytes.Equal(got, want) {
		t.Fatalf("client sent\n%x\nwant\n%x", got, want)
	}
	srv.Write(vector(t, "capture-echo-0.4.0-server-to-client"))
	m, err := g.node.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := node.Body[string](m); body != "Hello you over there!" {
		t.Fatalf("body %q", body)
	}
	if got := m.Return().String(); got != "1#"+addr+" => 0#echo_service" {
		t.Fatalf("reply route %q", got)
	}
}

// TestGettingStarted07Bytes: example 07 between a Go initiator or responder
// and a raw peer replaying the Rust capture.
func TestGettingStarted07Bytes(t *testing.T) {
	ctx := t.Context()
	t.Run("go initiator", func(t *testing.T) {
		addr, accept := rawListener(t)
		g := newGoNode(t)
		peer, err := g.tcp.Connect(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		g.node.Send(ctx, routing.Route{peer, routing.LocalAddress("echoer")}, "Hello Ockam!")
		c := accept()
		if got, want := readFrame(t, c), vector(t, "capture-gs-07-initiator-to-responder"); !bytes.Equal(got, want) {
			t.Fatalf("sent\n%x\nwant\n%x", got, want)
		}
		c.Write(vector(t, "capture-gs-07-responder-to-initiator"))
		m, err := g.node.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if body, _ := node.Body[string](m); body != "Hello Ockam!" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("go responder", func(t *testing.T) {
		g := newGoNode(t)
		g.node.StartWorker(ctx, "echoer", echoer())
		c := dial(t, g.listen(t))
		c.Write(vector(t, "capture-gs-07-initiator-to-responder"))
		if got, want := readFrame(t, c), vector(t, "capture-gs-07-responder-to-initiator"); !bytes.Equal(got, want) {
			t.Fatalf("replied\n%x\nwant\n%x", got, want)
		}
	})
}

// TestMultiHopBytes: example 08 with a Go middle node between raw peers
// replaying the four derived frames (protocol.md §11.7), the initiator's
// ephemeral port substituted for 52000.
func TestMultiHopBytes(t *testing.T) {
	ctx := t.Context()
	respAddr, acceptResp := rawListener(t)
	middle := newGoNode(t)
	// The middle node's connection to the responder is known as
	// 127.0.0.1:6000, the address the initiator's route names.
	nc, err := net.Dial("tcp", respAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := middle.tcp.AddConn(nc, "127.0.0.1:6000"); err != nil {
		t.Fatal(err)
	}
	resp := acceptResp()
	init := dial(t, middle.listen(t))
	eph := port(t, init.LocalAddr())
	sub := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("52000"), []byte(eph)) }

	init.Write(vector(t, "multihop-1-initiator-to-middle"))
	if got, want := readFrame(t, resp), sub(vector(t, "multihop-2-middle-to-responder")); !bytes.Equal(got, want) {
		t.Fatalf("middle → responder\n%x\nwant\n%x", got, want)
	}
	resp.Write(sub(vector(t, "multihop-3-responder-to-middle")))
	if got, want := readFrame(t, init), vector(t, "multihop-4-middle-to-initiator"); !bytes.Equal(got, want) {
		t.Fatalf("middle → initiator\n%x\nwant\n%x", got, want)
	}

	t.Run("go initiator", func(t *testing.T) {
		maddr, acceptMiddle := rawListener(t)
		g := newGoNode(t)
		m, _ := g.tcp.Connect(ctx, maddr)
		g.node.Send(ctx, routing.Route{m, routing.TCPAddress("127.0.0.1:6000"), routing.LocalAddress("echoer")}, "Hello Ockam!")
		if got, want := readFrame(t, acceptMiddle()), vector(t, "multihop-1-initiator-to-middle"); !bytes.Equal(got, want) {
			t.Fatalf("initiator → middle\n%x\nwant\n%x", got, want)
		}
	})
	t.Run("go responder", func(t *testing.T) {
		g := newGoNode(t)
		g.node.StartWorker(ctx, "echoer", echoer())
		c := dial(t, g.listen(t))
		c.Write(vector(t, "multihop-2-middle-to-responder"))
		if got, want := readFrame(t, c), vector(t, "multihop-3-responder-to-middle"); !bytes.Equal(got, want) {
			t.Fatalf("responder → middle\n%x\nwant\n%x", got, want)
		}
	})
}

func TestNoConnectionNoDial(t *testing.T) {
	g := newGoNode(t)
	addr, _ := rawListener(t)
	err := g.node.Send(t.Context(), routing.Route{routing.TCPAddress(addr), routing.LocalAddress("x")}, "x")
	if !errors.Is(err, tcp.ErrNoConnection) {
		t.Fatalf("err = %v, want ErrNoConnection", err)
	}
	if g.tcp.Stats().Dialled != 0 || g.tcp.Stats().NoConnection != 1 {
		t.Fatalf("stats %+v", g.tcp.Stats())
	}
}

func TestConnectByHostName(t *testing.T) {
	ctx := t.Context()
	srv := newGoNode(t)
	srv.node.StartWorker(ctx, "echoer", echoer())
	addr := srv.listen(t)
	_, p, _ := net.SplitHostPort(addr)
	g := newGoNode(t)
	name := net.JoinHostPort("localhost", p)
	a, err := g.tcp.Connect(ctx, name)
	if err != nil {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	if a.Value != name {
		t.Fatalf("address %v, want 1#%s", a, name)
	}
	if err := g.node.Send(ctx, routing.MustParseRoute("1#"+name+" => echoer"), "hi"); err != nil {
		t.Fatal(err)
	}
	m, err := g.node.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Return()[0] != a {
		t.Fatalf("reply came back as %v", m.Return())
	}
	// Connecting again reuses the connection.
	if _, err := g.tcp.Connect(ctx, name); err != nil || g.tcp.Stats().Dialled != 1 {
		t.Fatalf("second connect: %v, dialled %d", err, g.tcp.Stats().Dialled)
	}
	if _, err := g.tcp.Connect(ctx, "no-port"); err == nil {
		t.Fatal("connect without a port succeeded")
	}
}

func TestConnLimits(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	tr, err := tcp.New(n, tcp.Config{MaxConnsPerIP: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go tr.Serve(ln)
	var conns []net.Conn
	for range 3 {
		conns = append(conns, dial(t, ln.Addr().String()))
	}
	// The third is closed by the server.
	conns[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conns[2].Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third connection: %v", err)
	}
	if s := tr.Stats(); s.Refused != 1 || s.Conns != 2 {
		t.Fatalf("stats: refused %d conns %d", s.Refused, s.Conns)
	}
	_ = strconv.Itoa
}

func TestConcurrentConnectDialsOnce(t *testing.T) {
	srv := newGoNode(t)
	addr := srv.listen(t)
	g := newGoNode(t)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := g.tcp.Connect(t.Context(), addr)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if d := g.tcp.Stats().Dialled; d != 1 {
		t.Fatalf("dialled %d times, want 1", d)
	}
}
