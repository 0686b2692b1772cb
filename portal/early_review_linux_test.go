//go:build linux

package portal_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// TestEarlyDataThenEOF: a client that sends its request and half-closes
// before the inlet accepts it (its bytes and its EOF already queued): the
// target reads the request exactly once, then the end of the stream (a
// portal has no half close, so the answer is not checked).
func TestEarlyDataThenEOF(t *testing.T) {
	hubAddr, _ := startHub(t, hub.Config{}, nil)
	got := make(chan string, 1)
	target := serveTCP(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(c)
		got <- fmt.Sprintf("%q %v", b, err)
	})
	addr, in, _ := plainPair(t, hubAddr, target, portal.OutletConfig{}, portal.InletConfig{})
	first := dial(t, addr) // the first portal learns that the outlet takes early data
	first.Write([]byte("x"))
	first.Close()
	if g, want := <-got, fmt.Sprintf("%q %v", "x", nil); g != want {
		t.Fatalf("first portal: target read %s, want %s", g, want)
	}
	for _, req := range []string{"GET / HTTP/1.0\r\n\r\n", string(bytes.Repeat([]byte("y"), portal.MaxEarly))} {
		before := in.Stats().Early
		earlyConnEOF(t, in, []byte(req))
		if g, want := <-got, fmt.Sprintf("%q %v", req, nil); g != want {
			t.Fatalf("target read %.80s, want %.80s", g, want)
		}
		if in.Stats().Early-before != 1 {
			t.Errorf("the request did not go as early data")
		}
	}
}

// TestEarlyInFlightBound: when the route's outlet stops answering early
// Pings (a G2 outlet took its place: it never answers them), at most 16
// portals on the route wait for that with an early Ping; the next ones
// send a plain Ping, which a G2 outlet answers. An answer makes room again.
func TestEarlyInFlightBound(t *testing.T) {
	in, peer := fakeOutletInlet(t, portal.Options{Window: 64 << 10})
	learn(t, in, peer)
	ping := func() (*node.Message, bool) {
		t.Helper()
		m := receive(t, peer)
		d, err := portal.DecodeG3(m.Payload(), false)
		if err != nil || d.Tag != portal.TagPing {
			t.Fatalf("got % x, want a Ping", m.Payload())
		}
		return m, d.Early
	}
	var first *node.Message
	var firstConn net.Conn
	for i := range 16 {
		c := earlyConn(t, in, nil)
		m, early := ping()
		if !early {
			t.Fatalf("Ping %d is plain, want the early form", i)
		}
		if i == 0 {
			first, firstConn = m, c
		}
	}
	earlyConn(t, in, nil)
	if _, early := ping(); early {
		t.Fatalf("Ping 17, with 16 early ones unanswered, is in the early form, want plain")
	}
	// One early Ping answered: the next may be early again. (Its portal
	// relays once its handshake is over: the Data says so.)
	send(t, peer, first.Return(), portal.AppendPong(nil, earlyOffer(0)))
	firstConn.Write([]byte("y"))
	if d, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || d.Tag != portal.TagData {
		t.Fatalf("got %+v, %v; want the answered portal's Data", d, err)
	}
	earlyConn(t, in, nil)
	if _, early := ping(); !early {
		t.Fatalf("Ping after an answer is plain, want the early form")
	}
}

// TestOutletEarlyDataEdges: an outlet given early data whose target is
// unreachable answers exactly as to a plain Ping (the 2021 Pong, then
// Disconnect); one whose target reads the early bytes and closes at once
// says it took them in its Pong, then sends its Disconnect with a total
// of 0, and takes nothing more.
func TestOutletEarlyDataEdges(t *testing.T) {
	early := []byte("early bytes")
	t.Run("unreachable", func(t *testing.T) {
		n := node.New(node.Config{})
		defer n.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		target := ln.Addr().String()
		ln.Close()
		o, err := portal.NewOutlet(n, portal.OutletConfig{Target: target})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		mb, err := n.OpenMailbox("")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		send(t, mb, routing.Route{o.Address()}, portal.AppendPingEarly(nil, 1<<20, early))
		if p := receive(t, mb).Payload(); !bytes.Equal(p, []byte{0x01}) {
			t.Fatalf("first answer % x, want the 2021 Pong 01", p)
		}
		if p := receive(t, mb).Payload(); !bytes.Equal(p, []byte{0x02}) {
			t.Fatalf("second answer % x, want the 2021 Disconnect 02", p)
		}
	})
	t.Run("target closes at once", func(t *testing.T) {
		n := node.New(node.Config{})
		defer n.Close()
		got := make(chan string, 1)
		target := serveTCP(t, func(c net.Conn) {
			b := make([]byte, len(early))
			k, err := io.ReadFull(c, b)
			got <- fmt.Sprintf("%q %v", b[:k], err)
			c.Close()
		})
		o, err := portal.NewOutlet(n, portal.OutletConfig{Target: target})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		mb, err := n.OpenMailbox("")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		send(t, mb, routing.Route{o.Address()}, portal.AppendPingEarly(nil, 1<<20, early))
		pong := receive(t, mb)
		m, err := portal.DecodeG3(pong.Payload(), true)
		if err != nil || m.Tag != portal.TagPong || m.Ext == nil || m.Ext.Early != uint64(len(early)) {
			t.Fatalf("Pong %+v, %v; want one that took %d bytes", m, err, len(early))
		}
		if g, want := <-got, fmt.Sprintf("%q %v", early, nil); g != want {
			t.Fatalf("target read %s, want %s", g, want)
		}
		m, err = portal.DecodeG3(receive(t, mb).Payload(), true)
		if err != nil || m.Tag != portal.TagDisconnect || !m.HasTotal || m.Offset != 0 {
			t.Fatalf("got %+v, %v; want Disconnect with total 0", m, err)
		}
		// Our answer with our total, the early bytes: the outlet is content.
		send(t, mb, pong.Return(), portal.AppendDisconnect(nil, int64(len(early))))
		if st := o.Stats(); st.BytesOut != uint64(len(early)) {
			t.Errorf("outlet stats: %d bytes out, want %d", st.BytesOut, len(early))
		}
	})
}

// earlyConnEOF is earlyConn with the client's end of stream queued after
// its early bytes.
func earlyConnEOF(t testing.TB, in *portal.Inlet, early []byte) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := dial(t, ln.Addr().String())
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(early); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	waitQueued(t, srv, len(early))
	done := make(chan struct{})
	go func() { defer close(done); in.ServeConn(t.Context(), srv) }()
	t.Cleanup(func() { c.Close(); <-done })
	return c
}
