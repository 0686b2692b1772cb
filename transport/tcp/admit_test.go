package tcp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// serveNode runs a node with a transport of cfg on 127.0.0.1, with an
// echoer at echo_service, and returns it and its address.
func serveNode(t *testing.T, cfg tcp.Config) (*goNode, string) {
	t.Helper()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); n.Close() })
	g := &goNode{n, tr}
	if err := n.StartWorker(t.Context(), "echo_service", echoer()); err != nil {
		t.Fatal(err)
	}
	return g, g.listen(t)
}

// rawPeer is a connection that writes and reads bytes, as a Rust peer.
type rawPeer struct {
	t *testing.T
	net.Conn
}

func dialPeer(t *testing.T, addr string) *rawPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t, c}
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	if _, err := p.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// echoes sends the echo vector and reports whether the reply came back.
func (p *rawPeer) echoes() bool {
	p.t.Helper()
	if _, err := p.Write(vector(p.t, "frame-echo-request")); err != nil {
		return false
	}
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(p, hdr); err != nil {
		return false
	}
	body := make([]byte, int(hdr[0])<<8|int(hdr[1]))
	_, err := io.ReadFull(p, body)
	return err == nil && bytes.Contains(body, []byte("Hello you over there!"))
}

// closed reports whether the other end closed p (within 10 s).
func (p *rawPeer) closed() bool {
	p.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := p.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		<-tick.C
	}
}

// TestHeartbeatDropped: the December 2021 Rust heartbeat, frame
// 00 04 01 00 00 00, is accepted and dropped silently by a node (an
// accepted connection) and over a dialled connection: counted as a
// heartbeat, not as unroutable, the connection stays open, nothing logged.
func TestHeartbeatDropped(t *testing.T) {
	hb := vector(t, "heartbeat")
	if !bytes.Equal(hb, []byte{0x00, 0x04, 0x01, 0x00, 0x00, 0x00}) {
		t.Fatalf("heartbeat vector %x", hb)
	}
	t.Run("accepted", func(t *testing.T) {
		logs := &recordCount{}
		n := node.New(node.Config{Logger: slog.New(logs)})
		tr, err := tcp.New(n, tcp.Config{Logger: slog.New(logs), ProbeBurst: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close(); n.Close() })
		g := &goNode{n, tr}
		n.StartWorker(t.Context(), "echo_service", echoer())
		p := dialPeer(t, g.listen(t))
		for range 10 {
			p.write(hb)
		}
		if !p.echoes() {
			t.Fatal("no echo after heartbeats")
		}
		s := tr.Stats()
		if s.Heartbeats != 10 || s.Unroutable != 0 || s.ProbeDelayed != 0 || s.DecodeErrors != 0 || n.Stats().Unroutable != 0 {
			t.Fatalf("stats %+v, node %+v: want 10 heartbeats and nothing else", s, n.Stats())
		}
		if logs.n() != 0 {
			t.Fatalf("%d log records for heartbeats", logs.n())
		}
	})
	t.Run("dialled", func(t *testing.T) {
		addr, accept := rawListener(t)
		g := newGoNode(t)
		got := make(chan string, 1)
		g.node.StartWorker(t.Context(), "sink", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
			b, _ := node.Body[string](m)
			got <- b
			return nil
		}))
		if _, err := g.tcp.Connect(t.Context(), addr); err != nil {
			t.Fatal(err)
		}
		peer := accept()
		defer peer.Close()
		peer.Write(hb)
		// Then a message for sink: it arrives, so the heartbeat did not
		// close the connection.
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("sink")}, Payload: []byte("\x02hi")}
		frame, err := tcp.AppendFrame(nil, &m, tcp.MaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		peer.Write(frame)
		select {
		case b := <-got:
			if b != "hi" {
				t.Fatalf("got %q", b)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("nothing after the heartbeat")
		}
		if s := g.tcp.Stats(); s.Heartbeats != 1 || s.Unroutable != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestNeverSendsHeartbeat: nothing a program can route makes the transport
// write the heartbeat (an empty-route message) to a peer.
func TestNeverSendsHeartbeat(t *testing.T) {
	addr, accept := rawListener(t)
	g := newGoNode(t)
	hop, err := g.tcp.Connect(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	peer := accept()
	defer peer.Close()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{hop}}
	if err := g.node.Route(t.Context(), m); !errors.Is(err, tcp.ErrNothingAfterHop) {
		t.Fatalf("routing a heartbeat-shaped message: %v, want ErrNothingAfterHop", err)
	}
	if got := g.tcp.Stats().FramesOut; got != 0 {
		t.Fatalf("%d frames written", got)
	}
}

// recordCount is a slog handler that counts records.
type recordCount struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recordCount) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recordCount) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *recordCount) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recordCount) WithGroup(string) slog.Handler      { return r }
func (r *recordCount) n() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// TestBudgetShared: two transports drawing from one budget hold at most
// its size together; over it, connections are refused at once and
// counted, and a closed connection gives its unit back.
func TestBudgetShared(t *testing.T) {
	b := tcp.NewBudget(3)
	a, addrA := serveNode(t, tcp.Config{Budget: b})
	bb, addrB := serveNode(t, tcp.Config{Budget: b})
	p1, p2 := dialPeer(t, addrA), dialPeer(t, addrA)
	p3 := dialPeer(t, addrB)
	for _, p := range []*rawPeer{p1, p2, p3} {
		if !p.echoes() {
			t.Fatal("a connection within the budget was not served")
		}
	}
	if b.InUse() != 3 {
		t.Fatalf("in use %d, want 3", b.InUse())
	}
	for _, addr := range []string{addrA, addrB} {
		if !dialPeer(t, addr).closed() {
			t.Fatalf("%s: a connection over the budget was not closed", addr)
		}
	}
	waitUntil(t, "refusals counted", func() bool {
		return a.tcp.Stats().RefusedBudget == 1 && bb.tcp.Stats().RefusedBudget == 1
	})
	if s := a.tcp.Stats(); s.Refused != 1 || s.Conns != 2 {
		t.Fatalf("A: refused %d conns %d", s.Refused, s.Conns)
	}
	p1.Close()
	waitUntil(t, "unit given back", func() bool { return b.InUse() == 2 })
	if !dialPeer(t, addrB).echoes() {
		t.Fatal("a connection after one closed was not served")
	}
}

// TestCapsRefuseAtOnce: the per-node and per-IP caps refuse a flood at
// accept, each refusal counted by reason, and the admitted connections
// keep working.
func TestCapsRefuseAtOnce(t *testing.T) {
	g, addr := serveNode(t, tcp.Config{MaxConnsPerIP: 5, MaxConns: 8})
	var kept []*rawPeer
	for range 5 {
		kept = append(kept, dialPeer(t, addr))
	}
	for range 20 {
		dialPeer(t, addr)
	}
	waitUntil(t, "refusals counted", func() bool { return g.tcp.Stats().RefusedPerIP == 20 })
	for _, p := range kept {
		if !p.echoes() {
			t.Fatal("an admitted connection stopped working")
		}
	}
	// From another source address: the node cap (8) applies.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for range 5 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitUntil(t, "node cap", func() bool { s := g.tcp.Stats(); return s.Conns == 8 && s.RefusedCap == 2 })
}

// TestAllowListTransport: SetAllow on a bare transport; dialled
// connections are never subject to it.
func TestAllowListTransport(t *testing.T) {
	g, addr := serveNode(t, tcp.Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if !dialPeer(t, addr).closed() {
		t.Fatal("127.0.0.1 admitted by 10.0.0.0/8")
	}
	waitUntil(t, "refusal counted", func() bool { return g.tcp.Stats().RefusedAllow == 1 })
	raddr, accept := rawListener(t)
	if _, err := g.tcp.Connect(t.Context(), raddr); err != nil {
		t.Fatal(err)
	}
	peer := accept()
	defer peer.Close()
	g.tcp.SetAllow([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	if got := g.tcp.Stats().Conns; got != 1 {
		t.Fatalf("the dialled connection was closed by the allow-list (conns %d)", got)
	}
}

// flakyListener fails every Accept with EMFILE until closed.
type flakyListener struct {
	mu     sync.Mutex
	calls  int
	closed chan struct{}
	once   sync.Once
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
}

func (l *flakyListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestAcceptOutOfDescriptors: when accept fails with EMFILE (the process
// is out of descriptors), the transport backs off instead of spinning and
// logs at most once a second, whatever the number of failures.
func TestAcceptOutOfDescriptors(t *testing.T) {
	logs := &recordCount{}
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	fl := &flakyListener{closed: make(chan struct{})}
	served := make(chan error, 1)
	start := time.Now()
	go func() { served <- tr.Serve(fl) }()
	waitUntil(t, "five failed accepts", func() bool { return tr.Stats().AcceptErrors >= 5 })
	elapsed := time.Since(start)
	tr.Close()
	if err := <-served; !errors.Is(err, tcp.ErrClosed) {
		t.Fatalf("Serve = %v", err)
	}
	// 5 + 10 + 20 + 40 ms of backoff at least between the first five.
	if elapsed < 75*time.Millisecond {
		t.Fatalf("five failed accepts in %v: no backoff", elapsed)
	}
	fl.mu.Lock()
	calls := fl.calls
	fl.mu.Unlock()
	if calls > 10 {
		t.Fatalf("%d accept calls in %v: spinning", calls, elapsed)
	}
	if logs.n() != 1 || !strings.Contains(logs.msgs[0], "accept failed") {
		t.Fatalf("log records %q, want one", logs.msgs)
	}
}

// TestProbeDamping: a connection that keeps sending to addresses that do
// not exist is slowed, then closed, and counted; an honest client that
// sends to a stale address now and then is not affected.
func TestProbeDamping(t *testing.T) {
	probe := func(i int) []byte {
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress(node.RandomAddress(8)), routing.LocalAddress("x")}, Payload: []byte{0}}
		f, err := tcp.AppendFrame(nil, &m, tcp.MaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cfg := tcp.Config{ProbeBurst: 20, ProbeRate: 1, ProbeDelay: 20 * time.Millisecond, ProbeStrikes: 5}
	t.Run("attacker", func(t *testing.T) {
		g, addr := serveNode(t, cfg)
		p := dialPeer(t, addr)
		start := time.Now()
		go func() {
			for i := range 10000 {
				if _, err := p.Write(probe(i)); err != nil {
					return
				}
			}
		}()
		if !p.closed() {
			t.Fatal("the prober was not closed")
		}
		s := g.tcp.Stats()
		if s.ProbeClosed != 1 || s.ProbeDelayed != 5 {
			t.Fatalf("probe closed %d delayed %d, want 1 and 5", s.ProbeClosed, s.ProbeDelayed)
		}
		// It got its burst, what refilled, and the delayed ones: far from
		// the 10000 it tried.
		if s.Unroutable > 40 {
			t.Fatalf("%d probes handled before closing", s.Unroutable)
		}
		if d := time.Since(start); d < 5*cfg.ProbeDelay {
			t.Fatalf("closed after %v: it was not slowed first", d)
		}
	})
	t.Run("honest", func(t *testing.T) {
		g, addr := serveNode(t, cfg)
		p := dialPeer(t, addr)
		for i := range 15 { // within the burst
			p.write(probe(i))
			if !p.echoes() {
				t.Fatalf("echo %d failed", i)
			}
		}
		if s := g.tcp.Stats(); s.ProbeDelayed != 0 || s.ProbeClosed != 0 || s.Unroutable != 15 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		g, addr := serveNode(t, tcp.Config{})
		p := dialPeer(t, addr)
		for i := range 300 {
			p.write(probe(i))
		}
		if !p.echoes() {
			t.Fatal("a plain transport damped probes")
		}
		if s := g.tcp.Stats(); s.ProbeDelayed != 0 || s.Unroutable != 300 {
			t.Fatalf("stats %+v", s)
		}
	})
}
