package hub_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frames returns the frames of a vector file (each with its length prefix).
func frames(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := vectorfile.Bytes(filepath.Join("testdata", name+".hex"))
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := vectorfile.Frames(b)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(bodies))
	for i, body := range bodies {
		out[i] = binary.BigEndian.AppendUint16(nil, uint16(len(body)))
		out[i] = append(out[i], body...)
	}
	return out
}

// rawConn is a peer that writes and reads bytes, as a Rust node would.
type rawConn struct {
	t *testing.T
	net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// readFrame reads one whole frame, length prefix included.
func (c *rawConn) readFrame() []byte {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		c.t.Fatalf("reading frame header: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr))
	if _, err := io.ReadFull(c, body); err != nil {
		c.t.Fatalf("reading frame body: %v", err)
	}
	return append(hdr, body...)
}

// expectClosed asserts that the hub closes the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		c.t.Fatalf("connection still open: read %d bytes", n)
	} else if errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatal("connection not closed")
	}
}

func decode(t *testing.T, frame []byte) routing.TransportMessage {
	t.Helper()
	m, _, err := routing.DecodeMessage(frame[2:])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hex16 matches the hub's forwarder and connection aliases: 64 random
// bits (the Elixir Hub's had 32, 8 hex digits, as in the captures).
var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

// subAddr replaces, in a frame, each local address old (as the capture
// has it) by new, which may be longer: the address's length prefix and the
// frame's are rewritten, everything else is kept byte for byte.
func subAddr(frame []byte, pairs ...string) []byte {
	body := frame[2:]
	for i := 0; i < len(pairs); i += 2 {
		old, new := pairs[i], pairs[i+1]
		body = bytes.ReplaceAll(body, append([]byte{byte(len(old))}, old...), append([]byte{byte(len(new))}, new...))
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

func TestExactBytesEcho(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	for _, tc := range []struct{ req, rep string }{
		{"frame-echo-request", "frame-echo-reply"},
		{"capture-gs-10-client-to-hub", "capture-gs-10-hub-to-client"},
		{"control-ping", "control-pong"},
	} {
		t.Run(tc.req, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.write(frames(t, tc.req)[0])
			got := c.readFrame()
			if want := frames(t, tc.rep)[0]; !bytes.Equal(got, want) {
				t.Fatalf("reply\n%x\nwant\n%x", got, want)
			}
		})
	}
}

// TestExactBytesForwarding replays the Rust side of get_started example 11
// (RemoteForwarder responder and initiator) against the hub and checks every
// byte the hub sends, with the run's random hub addresses substituted for
// those of the capture.
func TestExactBytesForwarding(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	const capFwd, capInitAlias, capRespAlias = "9d7cda36", "b70d770b", "7cd5e669"
	respToHub := frames(t, "capture-gs-11-responder-to-hub")
	hubToResp := frames(t, "capture-gs-11-hub-to-responder")
	initToHub := frames(t, "capture-gs-11-initiator-to-hub")
	hubToInit := frames(t, "capture-gs-11-hub-to-initiator")

	// 1. The responder's RemoteForwarder registers.
	resp := dialRaw(t, addr)
	resp.write(respToHub[0])
	reply := resp.readFrame()
	m := decode(t, reply)
	if len(m.Return) != 1 || !hex16.MatchString(m.Return[0].Value) || m.Return[0].Type != routing.Local {
		t.Fatalf("forwarding address %v is not 0#<16 hex>", m.Return)
	}
	fwd := m.Return[0].Value
	if want := subAddr(hubToResp[0], capFwd, fwd); !bytes.Equal(reply, want) {
		t.Fatalf("registration reply\n%x\nwant\n%x", reply, want)
	}
	if got := h.Stats().Forwarders; got != 1 {
		t.Fatalf("forwarders = %d, want 1", got)
	}

	// 2. The initiator sends to the forwarding address.
	init := dialRaw(t, addr)
	init.write(subAddr(initToHub[0], capFwd, fwd))
	forwarded := resp.readFrame()
	m = decode(t, forwarded)
	if len(m.Return) != 2 || !hex16.MatchString(m.Return[0].Value) {
		t.Fatalf("forwarded return route %v", m.Return)
	}
	initAlias := m.Return[0].Value
	if want := subAddr(hubToResp[1], capInitAlias, initAlias); !bytes.Equal(forwarded, want) {
		t.Fatalf("forwarded message\n%x\nwant\n%x", forwarded, want)
	}

	// 3. The responder's Echoer replies straight along the return route.
	resp.write(subAddr(respToHub[1], capInitAlias, initAlias))
	echoed := init.readFrame()
	m = decode(t, echoed)
	if len(m.Return) != 2 || !hex16.MatchString(m.Return[0].Value) || m.Return[0].Value == initAlias {
		t.Fatalf("echo return route %v", m.Return)
	}
	if want := subAddr(hubToInit[0], capRespAlias, m.Return[0].Value); !bytes.Equal(echoed, want) {
		t.Fatalf("echo reply\n%x\nwant\n%x", echoed, want)
	}
}

// waitFor polls cond until it holds or d passes; it is for conditions
// observable only through counters, and reports the failure itself.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		<-tick.C
	}
}

func TestForwarderRemovedWithConnection(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	resp := dialRaw(t, addr)
	resp.write(frames(t, "capture-gs-11-responder-to-hub")[0])
	fwd := decode(t, resp.readFrame()).Return[0].Value
	if h.Stats().Forwarders != 1 {
		t.Fatal("no forwarder")
	}
	resp.Close()
	start := time.Now()
	waitFor(t, 2*time.Second, "forwarder removed after its connection closed", func() bool { return h.Stats().Forwarders == 0 })
	t.Logf("forwarder removed %v after close", time.Since(start))
	if h.Node().HasWorker(fwd) {
		t.Fatal("forwarder worker still registered")
	}
	// A message for the old forwarding address is dropped, and the sender's
	// connection stays usable.
	before := h.Stats().TCP.Unroutable
	c := dialRaw(t, addr)
	c.write(subAddr(frames(t, "capture-gs-11-initiator-to-hub")[0], "9d7cda36", fwd))
	c.write(frames(t, "frame-echo-request")[0])
	if got, want := c.readFrame(), frames(t, "frame-echo-reply")[0]; !bytes.Equal(got, want) {
		t.Fatalf("echo after dropped message: %x", got)
	}
	if h.Stats().TCP.Unroutable != before+1 {
		t.Fatalf("unroutable = %d, want %d", h.Stats().TCP.Unroutable, before+1)
	}
}

// goClient is a Go node connected to the hub.
type goClient struct {
	node *node.Node
	tcp  *tcp.Transport
	hub  routing.Address
}

func newGoClient(t *testing.T, addr string) *goClient {
	t.Helper()
	n, tr, hubAddr := hubtest.Connect(t, addr)
	return &goClient{node: n, tcp: tr, hub: hubAddr}
}

func (c *goClient) echo(ctx context.Context, msg string) (string, error) {
	if err := c.node.Send(ctx, routing.Route{c.hub, routing.LocalAddress("echo_service")}, msg); err != nil {
		return "", err
	}
	m, err := c.node.Receive(ctx)
	if err != nil {
		return "", err
	}
	return node.Body[string](m)
}

func TestConcurrentClients(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	const clients, each = 100, 20
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs := make([]*goClient, clients)
	for i := range cs {
		cs[i] = newGoClient(t, addr)
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for j := range each {
				want := fmt.Sprintf("client %d message %d", i, j)
				got, err := c.echo(ctx, want)
				if err != nil || got != want {
					t.Errorf("echo = %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestForwardingGoClients: a Go node behind "NAT" registers with the Go
// forwarder client; other Go nodes reach its echoer through the hub.
func TestForwardingGoClients(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	recv := newGoClient(t, addr)
	got := make(chan string, 100)
	recv.node.StartWorker(ctx, "echoer", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		body, err := node.Body[string](m)
		if err != nil {
			return err
		}
		got <- body
		return s.Send(ctx, m.Return(), body)
	}))
	rf, err := forwarding.Register(ctx, recv.node, routing.Route{recv.hub}, "echoer")
	if err != nil {
		t.Fatal(err)
	}
	if r := rf.Route(); len(r) != 2 || r[0] != recv.hub || !hex16.MatchString(rf.RemoteAddress()) {
		t.Fatalf("forwarding route %v", r)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			c := newGoClient(t, addr)
			// Anything after the forwarder address is discarded by the hub.
			route := routing.Route{c.hub, routing.LocalAddress(rf.RemoteAddress()), routing.LocalAddress("ignored")}
			msg := fmt.Sprintf("via hub %d", i)
			if err := c.node.Send(ctx, route, msg); err != nil {
				t.Error(err)
				return
			}
			m, err := c.node.Receive(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if body, _ := node.Body[string](m); body != msg {
				t.Errorf("reply %q, want %q", body, msg)
			}
		})
	}
	wg.Wait()
	if len(got) != 10 {
		t.Fatalf("receiver got %d messages, want 10", len(got))
	}
	if h.Stats().Forwarders != 1 {
		t.Fatalf("forwarders = %d", h.Stats().Forwarders)
	}
}

func TestBadInputClosesOnlyOffender(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	good := newGoClient(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	check := func(step string) {
		t.Helper()
		if got, err := good.echo(ctx, step); err != nil || got != step {
			t.Fatalf("good client after %s: %q, %v", step, got, err)
		}
	}
	check("start")
	bad := []struct {
		name  string
		bytes string
		close bool
	}{
		{"empty frame", "00 00", true},
		{"truncated varint", "00 02 01 80", true},
		{"huge route count", "00 0b 01 80 80 80 80 80 80 80 80 10 00", true},
		{"length beyond frame", "00 05 01 01 00 7f 61", true},
		{"address type 200", "00 07 01 01 c8 01 61 00 00", true},
		{"invalid utf-8", "00 08 01 01 00 02 c3 28 00 00", true},
		{"unknown worker", "00 0c 01 01 00 06 6e 6f 62 6f 64 79 00 00", false},
		{"empty onward, not a ping", "00 05 01 00 00 01 07", false},
		{"tcp address with no connection", "00 15 01 01 01 0f 31 32 37 2e 30 2e 30 2e 31 3a 35 32 30 30 30 00 00", false},
		{"unknown address type", "00 07 01 01 09 01 61 00 00", false},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before := h.Stats().TCP
			c := dialRaw(t, addr)
			c.write(hexBytes(tc.bytes))
			if tc.close {
				c.expectClosed()
				if h.Stats().TCP.DecodeErrors != before.DecodeErrors+1 {
					t.Errorf("decode errors %d, want %d", h.Stats().TCP.DecodeErrors, before.DecodeErrors+1)
				}
			} else {
				// Dropped: the same connection still works.
				c.write(frames(t, "frame-echo-request")[0])
				if got := c.readFrame(); !bytes.Equal(got, frames(t, "frame-echo-reply")[0]) {
					t.Fatalf("after dropped message: %x", got)
				}
				dropped := func(s tcp.Stats) uint64 { return s.Unroutable + s.NoConnection }
				if got, want := dropped(h.Stats().TCP), dropped(before)+1; got != want {
					t.Errorf("dropped %d, want %d", got, want)
				}
			}
			check(tc.name)
		})
	}
}

func TestPartialFrameTimesOut(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{TCP: tcp.Config{FrameTimeout: 100 * time.Millisecond}})
	c := dialRaw(t, addr)
	c.write([]byte{0x00, 0x2d, 0x01}) // a frame of 45 bytes that never comes
	c.expectClosed()
	if h.Stats().TCP.FrameTimeouts != 1 {
		t.Fatalf("frame timeouts = %d", h.Stats().TCP.FrameTimeouts)
	}
}

func TestOversizedSendIsRefused(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	c := newGoClient(t, addr)
	big := make([]byte, tcp.MaxFrameSize)
	err := c.node.Send(t.Context(), routing.Route{c.hub, routing.LocalAddress("echo_service")}, big)
	if !errors.Is(err, tcp.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	// The connection is unaffected.
	if got, err := c.echo(t.Context(), "still here"); err != nil || got != "still here" {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestShutdownGraceful(t *testing.T) {
	h, err := hub.New(hub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- h.Serve(ln) }()
	c := newGoClient(t, ln.Addr().String())
	if _, err := c.echo(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Serve = %v", err)
	}
	select {
	case <-c.tcp.Done(c.hub):
	case <-ctx.Done():
		t.Fatal("client connection not closed by shutdown")
	}
	h.Close() // idempotent after Shutdown
}

func hexBytes(s string) []byte {
	var out []byte
	for _, f := range bytes.Fields([]byte(s)) {
		var b byte
		fmt.Sscanf(string(f), "%02x", &b)
		out = append(out, b)
	}
	return out
}

func TestMessageRateThrottles(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{TCP: tcp.Config{MessageRate: 50, MessageBurst: 5}})
	c := dialRaw(t, addr)
	req := frames(t, "frame-echo-request")[0]
	var batch []byte
	for range 20 {
		batch = append(batch, req...)
	}
	c.write(batch)
	for range 20 {
		c.readFrame() // every message is answered: slowed, not dropped
	}
	if h.Stats().TCP.Throttled == 0 {
		t.Fatal("no read was throttled")
	}
}

// TestConnectionFlood: connections beyond the limit are refused and counted
// while a client that got in keeps exchanging messages without error.
func TestConnectionFlood(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{TCP: tcp.Config{MaxConns: 10, FrameTimeout: 200 * time.Millisecond}})
	good := newGoClient(t, addr)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exchanged := make(chan int, 1)
	go func() {
		n := 0
		defer func() { exchanged <- n }()
		for ctx.Err() == nil {
			msg := fmt.Sprintf("m%d", n)
			got, err := good.echo(ctx, msg)
			if ctx.Err() != nil {
				return
			}
			if err != nil || got != msg {
				t.Errorf("good client: %q, %v", got, err)
				return
			}
			n++
		}
	}()
	var flood []*rawConn
	for range 40 {
		flood = append(flood, dialRaw(t, addr))
	}
	// Slow-loris offenders among those let in: one byte, then nothing.
	for _, c := range flood {
		c.Write([]byte{0x00})
	}
	for _, c := range flood {
		c.expectClosed() // refused at once, or timed out mid-frame
	}
	cancel()
	if n := <-exchanged; n == 0 {
		t.Fatal("the good client exchanged nothing during the flood")
	}
	s := h.Stats().TCP
	if s.Refused < 30 || s.Refused+s.FrameTimeouts < 40 {
		t.Fatalf("refused %d, frame timeouts %d: want every offender accounted for", s.Refused, s.FrameTimeouts)
	}
}

// TestNeverSendsEmptyOnwardRoute: messages that would reach a peer with an
// empty onward route (which kills a 2021 Rust reader) are dropped.
func TestNeverSendsEmptyOnwardRoute(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	// The echo of a message whose return route is only the sender's
	// connection alias would reach the sender with nothing to route by.
	c := dialRaw(t, addr)
	before := h.Stats().TCP.Unroutable
	// onward [echo_service], return [] -> echo replies to [alias_c] only.
	c.write(hexBytes("00 12 01 01 00 0c 65 63 68 6f 5f 73 65 72 76 69 63 65 00 00"))
	// A normal message still arrives afterwards.
	c.write(frames(t, "frame-echo-request")[0])
	if got := c.readFrame(); !bytes.Equal(got, frames(t, "frame-echo-reply")[0]) {
		t.Fatalf("got %x", got)
	}
	if h.Stats().TCP.Unroutable != before+1 {
		t.Fatalf("unroutable %d, want %d", h.Stats().TCP.Unroutable, before+1)
	}
}

func TestGoClientRefusesRouteEndingAtHop(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	c := newGoClient(t, addr)
	err := c.node.Send(t.Context(), routing.Route{c.hub}, "x")
	if !errors.Is(err, tcp.ErrNothingAfterHop) {
		t.Fatalf("err = %v", err)
	}
}

func TestSendQueueByteBound(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{TCP: tcp.Config{SendQueueBytes: 256 << 10, QueueFullWait: 50 * time.Millisecond}})
	// A peer that sends large echo requests and never reads.
	c := dialRaw(t, addr)
	m := routing.TransportMessage{Onward: routing.MustParseRoute("echo_service"), Return: routing.MustParseRoute("app"), Payload: make([]byte, 60000)}
	frame, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		c.write(frame)
	}
	// The hub holds a bounded amount for it and drops the rest.
	waitFor(t, 10*time.Second, "queue-full drops", func() bool { return h.Stats().TCP.QueueFull > 0 })
	// Others are unaffected.
	good := newGoClient(t, addr)
	if got, err := good.echo(t.Context(), "fine"); err != nil || got != "fine" {
		t.Fatalf("good client: %q, %v", got, err)
	}
}
