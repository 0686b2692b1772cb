package portal_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// TestCreditArrivesDuringRead: an outlet learns that the inlet took its
// flow-control offer from the inlet's first Credit, which can arrive while
// the outlet's reader is blocked in a read sized for a 2021 peer. The bytes
// of that read must then go within the credit (split, the rest waiting for
// more credit), not as one Data past the limit, which an ockamhub inlet
// rightly refuses (ErrFlowControl) and which aborted the portal.
func TestCreditArrivesDuringRead(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	more := make(chan struct{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB, one legacy read
	o, err := portal.NewOutlet(n, portal.OutletConfig{Target: serveTCP(t, func(c net.Conn) {
		c.Write([]byte("hello"))
		select {
		case <-more:
			c.Write(big)
		case <-t.Context().Done():
		}
		c.Read(make([]byte, 1)) // until the portal closes
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	mb, route, pong := fakeInlet(t, n, routing.Route{o.Address()})
	if pong.Tag != portal.TagPong || pong.Ext == nil {
		t.Fatalf("answer %+v, want a Pong with an offer", pong)
	}
	// Before our Credit the outlet may only assume a 2021 inlet: Payload.
	hello, err := portal.DecodeG3(receive(t, mb).Payload(), true)
	if err != nil || hello.Tag != portal.TagPayload || string(hello.Data) != "hello" {
		t.Fatalf("first message %+v, %v; want Payload hello", hello, err)
	}
	send := func(p []byte) {
		t.Helper()
		if err := mb.Send(t.Context(), route, node.Raw(p)); err != nil {
			t.Fatal(err)
		}
	}
	limit := uint64(5 + 10)
	send(portal.AppendCredit(nil, limit))
	close(more)
	var got []byte
	for len(got) < len(big) {
		m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Tag {
		case portal.TagPayload:
			// Legitimate only if the read was sent before our Credit was
			// handled: then it is the whole read, as for a 2021 inlet.
			if len(got) != 0 || len(m.Data) != len(big) {
				t.Fatalf("Payload of %d bytes after %d bytes of Data", len(m.Data), len(got))
			}
		case portal.TagData:
			if m.Offset != 5+uint64(len(got)) {
				t.Fatalf("Data at offset %d, want %d", m.Offset, 5+len(got))
			}
			if end := m.Offset + uint64(len(m.Data)); end > limit {
				t.Fatalf("Data [%d, %d) past the granted limit %d", m.Offset, end, limit)
			}
		default:
			t.Fatalf("unexpected %+v", m)
		}
		got = append(got, m.Data...)
		if m.Tag == portal.TagData && m.Offset+uint64(len(m.Data)) == limit {
			limit += 4 << 10
			send(portal.AppendCredit(nil, limit))
		}
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the target's bytes arrived altered")
	}
	if st := o.Stats(); st.Failed != 0 {
		t.Errorf("outlet failures %d", st.Failed)
	}
}

// TestG2Chunks: the 2021 G2 worker writes each data message with one
// write() (not write_all), so a G2 outlet sends at most G2Chunk bytes per
// message, however large its reads and LegacyChunk.
func TestG2Chunks(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	data := bytes.Repeat([]byte("g2 chunking "), 1000) // 12000 bytes
	o, err := portal.NewOutlet(n, portal.OutletConfig{Generation: portal.G2, Target: serveTCP(t, func(c net.Conn) {
		c.Write(data)
		c.Read(make([]byte, 1))
	}), Options: portal.Options{LegacyChunk: 32 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	mb, err := n.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if err := mb.Send(t.Context(), routing.Route{o.Address()}, node.Raw(portal.G2Handshake)); err != nil {
		t.Fatal(err)
	}
	if p := receive(t, mb).Payload(); !bytes.Equal(p, portal.G2Handshake) {
		t.Fatalf("G2 answer % x, want 00", p)
	}
	var got []byte
	for len(got) < len(data) {
		p := receive(t, mb).Payload()
		d, err := bare.NewReader(p).Data("binary")
		if err != nil {
			t.Fatal(err)
		}
		if len(d) > portal.G2Chunk {
			t.Fatalf("G2 data message of %d bytes, want at most %d", len(d), portal.G2Chunk)
		}
		got = append(got, d...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("G2 data altered")
	}
}

// TestRefusalsBounded: Pings over MaxConns are answered (Pong, Disconnect)
// by a bounded number of goroutines. A peer that floods Pings and never
// reads the answers (its mailbox full, each answer blocked) must not make
// the outlet hold one goroutine per Ping.
func TestRefusalsBounded(t *testing.T) {
	n := node.New(node.Config{MailboxSize: 16})
	defer n.Close()
	hold := make(chan struct{})
	defer close(hold)
	o, err := portal.NewOutlet(n, portal.OutletConfig{Target: serveTCP(t, func(net.Conn) { <-hold }), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, _, pong := fakeInlet(t, n, routing.Route{o.Address()}); pong.Tag != portal.TagPong {
		t.Fatalf("first Ping: %+v", pong)
	}
	waitFor(t, "the first portal open", func() bool { return o.Stats().Open == 1 })
	flood, err := n.OpenMailbox("") // never read
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	before := runtime.NumGoroutine()
	const pings = 2000
	for range pings {
		if err := flood.Send(t.Context(), routing.Route{o.Address()}, node.Raw(portal.AppendPing(nil))); err != nil {
			t.Fatal(err)
		}
	}
	// Each refused Ping counts as a failure, answered or not.
	waitFor(t, "every Ping refused", func() bool { return o.Stats().Failed == pings })
	if grown := runtime.NumGoroutine() - before; grown > 200 {
		t.Fatalf("%d goroutines more after %d refused Pings", grown, pings)
	}
}

// failingListener fails its first accepts as a listener out of
// descriptors does.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestInletSurvivesAcceptErrors: running out of descriptors for a moment
// (a connection flood) must not stop the inlet for good.
func TestInletSurvivesAcceptErrors(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	o, err := portal.NewOutlet(n, portal.OutletConfig{Target: echoTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	in, err := portal.NewInlet(n, portal.InletConfig{Route: routing.Route{o.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln}
	fl.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- in.Serve(fl) }()
	c := dial(t, ln.Addr().String())
	if err := echoCheck(t, c, 100<<10); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := <-served; !errors.Is(err, portal.ErrClosed) {
		t.Fatalf("Serve: %v, want ErrClosed", err)
	}
}
