package portal_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
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

// expectNothing checks that nothing arrives at mb for a while (absence can
// only be observed by waiting).
func expectNothing(t *testing.T, mb *node.Mailbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if m, err := mb.Receive(ctx); err == nil {
		t.Fatalf("got % x from %s; want nothing", m.Payload(), m.Return())
	}
}

// clientClosed checks that the inlet closed its client's connection.
func clientClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client's connection was not closed")
	}
}

// TestHostileOutlet plays a hostile or broken outlet against a Go inlet:
// whatever it sends, the inlet neither hangs nor relays garbage, and it
// never answers in a way that would wedge a 2021 Rust worker.
func TestHostileOutlet(t *testing.T) {
	for _, tc := range []struct {
		name string
		// play runs after the Ping arrived at peer; I is the inlet's route.
		play func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn)
	}{
		{"payload before pong", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendPayload(nil, []byte("early")))
			clientClosed(t, c)
			expectNothing(t, peer)
		}},
		{"disconnect before pong", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendDisconnect(nil, -1))
			clientClosed(t, c)
			expectNothing(t, peer)
		}},
		{"ping after pong", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendPong(nil, nil))
			send(t, peer, I, portal.AppendPing(nil))
			// A plain Disconnect (the peer offered nothing), then nothing.
			if p := receive(t, peer).Payload(); !bytes.Equal(p, []byte{0x02}) {
				t.Fatalf("got % x, want the plain Disconnect 02", p)
			}
			clientClosed(t, c)
			expectNothing(t, peer)
		}},
		{"payload after data", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendPong(nil, &portal.Extension{Version: portal.ExtensionVersion, Window: 1 << 20}))
			if m, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || m.Tag != portal.TagCredit {
				t.Fatalf("got %+v, %v; want the inlet's Credit", m, err)
			}
			// Before its first Data an outlet may still send Payloads
			// (reads from before the Credit reached it); after, never.
			send(t, peer, I, portal.AppendPayload(nil, []byte("ab")))
			send(t, peer, I, portal.AppendData(nil, 2, []byte("cd")))
			send(t, peer, I, portal.AppendPayload(nil, []byte("ef")))
			if m, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || m.Tag != portal.TagDisconnect || !m.Abort {
				t.Fatalf("got %+v, %v; want an Abort", m, err)
			}
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, _ := io.ReadAll(c)
			if string(b) != "abcd" && string(b) != "ab" && string(b) != "" {
				t.Fatalf("client read %q: more than the bytes before the Payload", b)
			}
		}},
		{"credit without offer", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendPong(nil, nil))
			send(t, peer, I, portal.AppendCredit(nil, 1<<62))
			if p := receive(t, peer).Payload(); !bytes.Equal(p, []byte{0x02}) {
				t.Fatalf("got % x, want the plain Disconnect 02", p)
			}
			clientClosed(t, c)
		}},
		{"routed past the portal, later routes", func(t *testing.T, peer *node.Mailbox, I routing.Route, c net.Conn) {
			send(t, peer, I, portal.AppendPong(nil, nil))
			send(t, peer, append(slices.Clone(I), routing.LocalAddress("beyond")), portal.AppendPayload(nil, []byte("dropped")))
			other, err := peer.Node().OpenMailbox("")
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			send(t, other, I, portal.AppendPayload(nil, []byte("kept"))) // another return route: ignored
			b := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "kept" {
				t.Fatalf("client read %q, %v", b, err)
			}
			c.Write([]byte("back"))
			m := receive(t, peer) // to the route of the Pong, not of the later message
			if msg, err := portal.DecodeG3(m.Payload(), false); err != nil || string(msg.Data) != "back" {
				t.Fatalf("got %+v, %v", msg, err)
			}
			expectNothing(t, other)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := node.New(node.Config{})
			defer n.Close()
			peer, err := n.OpenMailbox("")
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			addr, _ := startInlet(t, n, portal.InletConfig{Route: routing.Route{peer.Address()}})
			c := dial(t, addr)
			ping := receive(t, peer)
			if !bytes.Equal(ping.Payload(), []byte{0x00}) {
				t.Fatalf("ping % x", ping.Payload())
			}
			tc.play(t, peer, ping.Return(), c)
		})
	}
}

func send(t *testing.T, mb *node.Mailbox, route routing.Route, p []byte) {
	t.Helper()
	if err := mb.Send(t.Context(), route, node.Raw(p)); err != nil {
		t.Fatal(err)
	}
}

// TestHostileInlet plays a hostile inlet against a Go outlet that offered
// the extension: absurd offsets and credits, a flood of Disconnects.
func TestHostileInlet(t *testing.T) {
	newOutlet := func(t *testing.T) (*node.Node, *portal.Outlet) {
		n := node.New(node.Config{})
		t.Cleanup(func() { n.Close() })
		o, err := portal.NewOutlet(n, portal.OutletConfig{Target: echoTarget(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return n, o
	}
	t.Run("credit overflow", func(t *testing.T) {
		n, o := newOutlet(t)
		mb, route, _ := fakeInlet(t, n, routing.Route{o.Address()})
		send(t, mb, route, portal.AppendCredit(nil, ^uint64(0)))
		send(t, mb, route, portal.AppendData(nil, 0, []byte("echo")))
		m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil || m.Tag != portal.TagData || m.Offset != 0 || string(m.Data) != "echo" {
			t.Fatalf("got %+v, %v; want Data 0 echo", m, err)
		}
	})
	// A Payload is not flow controlled: once the inlet has accepted the
	// extension it must send Data, or it could queue without bound ahead
	// of a slow target, and make the delivering goroutine (a TCP reader
	// shared by every portal on the connection) wait for that target.
	t.Run("payload after credit", func(t *testing.T) {
		n, o := newOutlet(t)
		mb, route, _ := fakeInlet(t, n, routing.Route{o.Address()})
		send(t, mb, route, portal.AppendCredit(nil, 1<<20))
		send(t, mb, route, portal.AppendPayload(nil, []byte("echo")))
		m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil || m.Tag != portal.TagDisconnect || !m.Abort {
			t.Fatalf("got %+v, %v; want an Abort", m, err)
		}
		waitFor(t, "the portal closed", func() bool { return o.Stats().Open == 0 })
	})
	t.Run("huge offset", func(t *testing.T) {
		n, o := newOutlet(t)
		mb, route, _ := fakeInlet(t, n, routing.Route{o.Address()})
		send(t, mb, route, portal.AppendCredit(nil, 1<<20))
		send(t, mb, route, portal.AppendData(nil, ^uint64(0)-1, []byte("xy")))
		m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil || m.Tag != portal.TagDisconnect || !m.Abort {
			t.Fatalf("got %+v, %v; want an Abort", m, err)
		}
		waitFor(t, "the portal closed", func() bool { return o.Stats().Open == 0 })
	})
	t.Run("overlong uvarint", func(t *testing.T) {
		n, o := newOutlet(t)
		mb, route, _ := fakeInlet(t, n, routing.Route{o.Address()})
		send(t, mb, route, append([]byte{byte(portal.TagCredit)}, bytes.Repeat([]byte{0xff}, 11)...))
		m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil || m.Tag != portal.TagDisconnect {
			t.Fatalf("got %+v, %v; want a Disconnect", m, err)
		}
		waitFor(t, "the portal closed", func() bool { return o.Stats().Open == 0 })
	})
	t.Run("disconnect flood", func(t *testing.T) {
		n, o := newOutlet(t)
		mb, route, _ := fakeInlet(t, n, routing.Route{o.Address()})
		// A 2021 inlet (no Credit): its Disconnect gets no answer, and
		// the Disconnects after it change nothing.
		for range 1000 {
			// Once the portal is gone its address is unknown: in process
			// that is an error to the sender, over TCP a drop.
			mb.Send(t.Context(), route, node.Raw(portal.AppendDisconnect(nil, -1)))
		}
		// Opened too: the Pong goes before the portal counts as open.
		waitFor(t, "the portal closed", func() bool { st := o.Stats(); return st.Opened == 1 && st.Open == 0 })
		expectNothing(t, mb)
		if st := o.Stats(); st.Failed != 0 || st.Opened != 1 {
			t.Errorf("outlet stats %+v", st)
		}
	})
}

// rawOutlet starts a Go outlet (cfg) behind a TCP listener and connects to
// it as a 2021 Rust inlet node would (portals.md §5.1, example 02).
func rawOutlet(t *testing.T, cfg portal.OutletConfig) (net.Conn, *bufio.Reader, *portal.Outlet) {
	t.Helper()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); n.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tr.Serve(ln)
	o, err := portal.NewOutlet(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c), o
}

// pongToDisconnect turns the §7.2 Pong frame (NO→NI) into the Disconnect
// the outlet sends the same way: the payload 01 01 becomes 01 02.
func pongToDisconnect(pong []byte) []byte {
	d := bytes.Clone(pong)
	d[len(d)-1] = byte(portal.TagDisconnect)
	return d
}

// TestOutletUnreachableSequence: to a 2021 G3 inlet, an outlet whose target
// is unreachable sends exactly Pong then Disconnect, both from one fresh
// address, and then nothing (portals.md §12.4); a G2 outlet sends nothing.
func TestOutletUnreachableSequence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	v := load(t, "portal-g3-sequence.hex").Segments
	t.Run("G3", func(t *testing.T) {
		c, br, _ := rawOutlet(t, portal.OutletConfig{Target: closed})
		c.Write(v["ping"])
		pong := readFrame(t, c, br)
		O := pong[offReturn : offReturn+hexLen]
		if want := with(v["pong"], offReturn, O); !bytes.Equal(pong, want) {
			t.Fatalf("pong\n got % x\nwant % x (no offer: there is no portal)", pong, want)
		}
		if got, want := readFrame(t, c, br), with(pongToDisconnect(v["pong"]), offReturn, O); !bytes.Equal(got, want) {
			t.Fatalf("disconnect\n got % x\nwant % x", got, want)
		}
		// The 2021 inlet sends what its client wrote before it handled
		// the Disconnect: nothing answers it.
		c.Write(with(v["payload-hello"], offOnward, O))
		expectNoFrame(t, c, br)
	})
	t.Run("G2", func(t *testing.T) {
		c, br, _ := rawOutlet(t, portal.OutletConfig{Target: closed, Generation: portal.G2})
		c.Write(v["ping"]) // the G2 handshake is the same frame
		expectNoFrame(t, c, br)
	})
}

// TestOutletClosesFirstSequence: when the target closes first, a default
// outlet (which offered the extension to a 2021 inlet that ignored it)
// sends the data, then the plain 2021 Disconnect 02 (no total), then
// nothing, whatever the inlet still sends (portals.md §12.5).
func TestOutletClosesFirstSequence(t *testing.T) {
	v := load(t, "portal-g3-sequence.hex").Segments
	target := serveTCP(t, func(c net.Conn) {
		b := make([]byte, 5)
		io.ReadFull(c, b)
		c.Write([]byte("world"))
	})
	c, br, _ := rawOutlet(t, portal.OutletConfig{Target: target})
	c.Write(v["ping"])
	pong := readFrame(t, c, br)
	O := pong[offReturn : offReturn+hexLen]
	c.Write(with(v["payload-hello"], offOnward, O))
	if got, want := readFrame(t, c, br), with(v["payload-world"], offReturn, O); !bytes.Equal(got, want) {
		t.Fatalf("world\n got % x\nwant % x", got, want)
	}
	if got, want := readFrame(t, c, br), with(pongToDisconnect(v["pong"]), offReturn, O); !bytes.Equal(got, want) {
		t.Fatalf("disconnect\n got % x\nwant % x", got, want)
	}
	c.Write(with(v["payload-hello"], offOnward, O)) // in flight from the 2021 inlet
	c.Write(with(v["disconnect"], offOnward, O))    // its own close, crossing ours
	expectNoFrame(t, c, br)
}

// TestCloseWithStuckSend: the outlet's reader is blocked sending to a peer
// that reads nothing more (a 2021 inlet node whose TCP connection is
// stalled behind another portal looks like this). Closing the outlet, as
// on SIGTERM, must still end the portal, within CloseWait, not wait for
// the peer forever.
func TestCloseWithStuckSend(t *testing.T) {
	n := node.New(node.Config{MailboxSize: 4})
	defer n.Close()
	o, err := portal.NewOutlet(n, portal.OutletConfig{
		Target:  serveTCP(t, func(c net.Conn) { c.Write(make([]byte, 4<<20)); c.Read(make([]byte, 1)) }),
		Options: portal.Options{NoExtension: true, CloseWait: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, pong := fakeInlet(t, n, routing.Route{o.Address()}) // then never reads
	if pong.Tag != portal.TagPong {
		t.Fatalf("answer %+v", pong)
	}
	// Its 4-message mailbox fills at once; the outlet's next send, data
	// or Disconnect, waits for room that never comes.
	waitFor(t, "data flowing", func() bool { return o.Stats().BytesIn > 0 })
	closed := make(chan struct{})
	go func() { o.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close hung behind a send to a peer that reads nothing")
	}
}

// TestConnLost: when the hub goes away, portals that send nothing (an
// idle SSH session; an outlet waiting for credit) close with their
// connection when Options.ConnDone is set, instead of holding their sockets
// (and the outlet's MaxConns slots) until those end, which for an idle
// session may be never. Two portals share each connection (one watch per
// connection).
func TestConnLost(t *testing.T) {
	hubAddr, h := startHub(t, hub.Config{}, nil)
	targetClosed := make(chan struct{}, 2)
	target := serveTCP(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		targetClosed <- struct{}{}
	})
	on, otr, hop := hubtest.Connect(t, hubAddr)
	o, err := portal.NewOutlet(on, portal.OutletConfig{Target: target, Options: portal.Options{ConnDone: otr.Done}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	rf, err := forwarding.Register(t.Context(), on, routing.Route{hop}, o.Address().Value)
	if err != nil {
		t.Fatal(err)
	}
	in, itr, _ := hubtest.Connect(t, hubAddr)
	addr, inlet := startInlet(t, in, portal.InletConfig{Route: rf.Route(), Options: portal.Options{ConnDone: itr.Done}})
	cs := []net.Conn{dial(t, addr), dial(t, addr)} // idle sessions: nothing either way
	waitFor(t, "the portals open", func() bool { return o.Stats().Open == 2 && inlet.Stats().Open == 2 })
	h.Close()
	waitFor(t, "all portals closed", func() bool { return o.Stats().Open == 0 && inlet.Stats().Open == 0 })
	for range cs {
		select {
		case <-targetClosed:
		case <-time.After(30 * time.Second):
			t.Fatal("a target's connection is still open")
		}
	}
	for _, c := range cs {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, c); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client: %v; want the connection reset", err)
		}
	}
}
