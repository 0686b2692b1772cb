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
