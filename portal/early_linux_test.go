//go:build linux

package portal_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// Early data is taken only on Linux (a read that never waits); these tests
// hand the inlet a connection whose first bytes are already queued in its
// socket, so that whether they go with the Ping does not depend on timing.

// waitQueued waits until at least n bytes are queued in c's socket,
// without reading them.
func waitQueued(t testing.TB, c net.Conn, n int) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, n)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	err = rc.Read(func(fd uintptr) bool {
		k, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err == nil && k >= n
	})
	if err != nil {
		t.Fatalf("waiting for %d queued bytes: %v", n, err)
	}
}

// earlyConn returns a client connection to in whose first bytes, early,
// are queued at the inlet's end before in.ServeConn sees it.
func earlyConn(t testing.TB, in *portal.Inlet, early []byte) net.Conn {
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
	if len(early) > 0 {
		if _, err := c.Write(early); err != nil {
			t.Fatal(err)
		}
		waitQueued(t, srv, len(early))
	}
	done := make(chan struct{})
	go func() { defer close(done); in.ServeConn(t.Context(), srv) }()
	t.Cleanup(func() { c.Close(); <-done })
	return c
}

// echoRest writes rest random bytes after the early bytes already sent on
// c, and checks that the echo is early ‖ rest exactly (SHA-256). (A
// portal has no half close: the target's echo would be cut.)
func echoRest(t testing.TB, c net.Conn, early []byte, rest int) {
	t.Helper()
	tail := make([]byte, rest)
	rand.Read(tail)
	want := sha256.Sum256(append(bytes.Clone(early), tail...))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(tail)
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	got := make([]byte, len(early)+rest)
	k, err := io.ReadFull(c, got)
	got = got[:k]
	if werr := <-errc; werr != nil {
		t.Fatalf("writing: %v", werr)
	}
	if err != nil {
		t.Fatalf("reading the echo: %v (%d bytes)", err, len(got))
	}
	if len(got) != len(early)+rest || sha256.Sum256(got) != want {
		t.Fatalf("echo of %d bytes differs (SHA-256), want %d", len(got), len(early)+rest)
	}
}

// TestEarlyData: once an inlet knows its outlet takes early data, a
// client's first bytes go with the Ping, and the stream that starts with
// them arrives exactly once, in order (echoed, SHA-256), plain and inside
// a secure channel, through a hub.
func TestEarlyData(t *testing.T) {
	hubAddr, _ := startHub(t, hub.Config{}, nil)
	for _, secure := range []bool{false, true} {
		name := "plain"
		pair := plainPair
		if secure {
			name, pair = "secure", securePair
		}
		t.Run(name, func(t *testing.T) {
			addr, in, _ := pair(t, hubAddr, echoTarget(t), portal.OutletConfig{}, portal.InletConfig{})
			// The first portal on the route learns that the outlet takes
			// early data; its own first bytes wait for the Pong.
			if err := echoCheck(t, dial(t, addr), 1000); err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 1000, portal.MaxEarly} {
				before := in.Stats().Early
				early := make([]byte, n)
				rand.Read(early)
				c := earlyConn(t, in, early)
				echoRest(t, c, early, 1<<20)
				if got := in.Stats().Early - before; got != 1 {
					t.Errorf("%d early bytes: %d portals took early data, want 1", n, got)
				}
			}
			// More than MaxEarly queued: the first MaxEarly go early, the
			// rest is read as usual.
			early := make([]byte, 3*portal.MaxEarly+7)
			rand.Read(early)
			echoRest(t, earlyConn(t, in, early), early, 100)
		})
	}
}

// TestEarlyDataServerSpeaksFirst: a client that sends nothing (SSH) is not
// waited for: the Ping goes at once, the target's banner reaches the
// client, and the portal then relays both ways.
func TestEarlyDataServerSpeaksFirst(t *testing.T) {
	hubAddr, _ := startHub(t, hub.Config{}, nil)
	banner := []byte("SSH-2.0-target\r\n")
	target := serveTCP(t, func(c net.Conn) {
		if _, err := c.Write(banner); err != nil {
			return
		}
		io.Copy(c, c)
	})
	addr, in, _ := plainPair(t, hubAddr, target, portal.OutletConfig{}, portal.InletConfig{})
	for i := range 3 { // the first learns that the outlet takes early data
		c := earlyConn(t, in, nil)
		if i == 0 {
			c = dial(t, addr)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		got := make([]byte, len(banner))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, banner) {
			t.Fatalf("portal %d: banner %q, %v", i, got, err)
		}
		echoRest(t, c, nil, 64<<10)
	}
	if e := in.Stats().Early; e != 0 {
		t.Errorf("%d portals took early data; the clients sent nothing before the banner", e)
	}
}

// fakeOutletInlet is an inlet whose route ends at peer, a mailbox playing
// the outlet.
func fakeOutletInlet(t *testing.T, opts portal.Options) (*portal.Inlet, *node.Mailbox) {
	n := node.New(node.Config{})
	t.Cleanup(func() { n.Close() })
	peer, err := n.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	in, err := portal.NewInlet(n, portal.InletConfig{Route: routing.Route{peer.Address()}, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in, peer
}

// earlyOffer is an ockamhub outlet's offer that takes early data.
func earlyOffer(took uint64) *portal.Extension {
	return &portal.Extension{Version: portal.ExtensionVersion, Window: 1 << 20, Features: portal.FeatureEarlyData, Early: took}
}

// learn opens a portal with a client that sends nothing, which teaches
// the inlet that the fake outlet takes early data, and closes it.
func learn(t *testing.T, in *portal.Inlet, peer *node.Mailbox) {
	t.Helper()
	c := earlyConn(t, in, nil)
	ping := receive(t, peer)
	if !bytes.Equal(ping.Payload(), []byte{0x00}) {
		t.Fatalf("first Ping % x, want the plain 00", ping.Payload())
	}
	send(t, peer, ping.Return(), portal.AppendPong(nil, earlyOffer(0)))
	// It sent a plain Ping: it grants our window with a Credit.
	if m, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || m.Tag != portal.TagCredit {
		t.Fatalf("got %+v, %v; want the Credit", m, err)
	}
	c.Close()
	if m, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || m.Tag != portal.TagDisconnect {
		t.Fatalf("got %+v, %v; want the Disconnect", m, err)
	}
	send(t, peer, ping.Return(), portal.AppendDisconnect(nil, 0))
}

// TestEarlyDataFallback: the inlet keeps its early bytes until the Pong
// says how many the outlet took, and sends the rest in the form the
// outlet reads, so that nothing is lost or duplicated, whatever answers
// the early Ping: a 2021 G3 outlet (plain Pong, exact 2021 bytes), an
// ockamhub outlet from before early data (an offer without features), a
// G2 outlet, or one that took only part of them. A hostile outlet that
// claims more than it was sent closes the portal.
func TestEarlyDataFallback(t *testing.T) {
	early := []byte("GET / HTTP/1.0\r\n\r\n")
	rest := []byte("and the rest")
	all := append(bytes.Clone(early), rest...)
	// stream collects the stream bytes of the inlet's messages, decoded
	// with dec, until it has len(all), and checks them.
	stream := func(t *testing.T, peer *node.Mailbox, dec func(p []byte) (off uint64, d []byte, ok bool), from int) {
		t.Helper()
		got := bytes.Clone(all[:from])
		for len(got) < len(all) {
			p := receive(t, peer).Payload()
			off, d, ok := dec(p)
			if !ok {
				t.Fatalf("got % x, want stream bytes", p)
			}
			if off != uint64(len(got)) {
				t.Fatalf("data at offset %d, want %d", off, len(got))
			}
			got = append(got, d...)
		}
		if !bytes.Equal(got, all) {
			t.Fatalf("stream %q, want %q", got, all)
		}
	}
	payload := func(n *uint64) func(p []byte) (uint64, []byte, bool) {
		return func(p []byte) (uint64, []byte, bool) {
			m, err := portal.DecodeG3(p, false)
			if err != nil || m.Tag != portal.TagPayload {
				return 0, nil, false
			}
			off := *n
			*n += uint64(len(m.Data))
			return off, m.Data, true
		}
	}
	data := func(p []byte) (uint64, []byte, bool) {
		m, err := portal.DecodeG3(p, true)
		return m.Offset, m.Data, err == nil && m.Tag == portal.TagData
	}
	for _, tc := range []struct {
		name string
		pong []byte
		// check reads what follows the Pong; the client writes rest once
		// the early bytes have come.
		check func(t *testing.T, peer *node.Mailbox, c net.Conn)
		// learnt: the next Ping is in the early form again.
		learnt bool
		// closing: how the portal ends after check: "ext" (Disconnect
		// with totals both ways), "plain" (02 both ways), "g2" (nothing
		// is sent), "" (check saw it closed).
		closing string
	}{
		{"2021 G3 outlet", []byte{0x01}, func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			var n uint64
			stream(t, peer, payload(&n), 0)
		}, false, "plain"},
		{"ockamhub outlet before early data", portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 1 << 20}), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			if m, err := portal.DecodeG3(receive(t, peer).Payload(), true); err != nil || m.Tag != portal.TagCredit {
				t.Fatalf("got %+v, %v; want the Credit first", m, err)
			}
			stream(t, peer, data, 0)
		}, false, "ext"},
		{"took none", portal.AppendPong(nil, earlyOffer(0)), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			stream(t, peer, data, 0) // no Credit: the Ping granted the window
		}, true, "ext"},
		{"took part", portal.AppendPong(nil, earlyOffer(5)), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			stream(t, peer, data, 5)
		}, true, "ext"},
		{"took all", portal.AppendPong(nil, earlyOffer(uint64(len(early)))), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			stream(t, peer, data, len(early))
		}, true, "ext"},
		{"G2 outlet", portal.G2Handshake, func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			var n uint64
			stream(t, peer, func(p []byte) (uint64, []byte, bool) {
				d, err := portal.DecodeG2Data(p)
				off := n
				n += uint64(len(d))
				return off, d, err == nil
			}, 0)
		}, false, "g2"},
		{"took more than sent", portal.AppendPong(nil, earlyOffer(uint64(len(early)+1))), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			clientClosed(t, c)
			expectNothing(t, peer)
		}, false, ""},
		{"took more than its window", portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 4, Features: portal.FeatureEarlyData, Early: 5}), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			clientClosed(t, c)
			expectNothing(t, peer)
		}, false, ""},
		{"took an absurd count", append(portal.AppendPong(nil, earlyOffer(0))[:len(portal.AppendPong(nil, earlyOffer(0)))-1], bare.AppendUint(nil, ^uint64(0))...), func(t *testing.T, peer *node.Mailbox, c net.Conn) {
			clientClosed(t, c)
			expectNothing(t, peer)
		}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, peer := fakeOutletInlet(t, portal.Options{Window: 64 << 10})
			learn(t, in, peer)
			c := earlyConn(t, in, early)
			ping := receive(t, peer)
			m, err := portal.DecodeG3(ping.Payload(), false)
			if err != nil || m.Tag != portal.TagPing || !m.Early || !bytes.Equal(m.Data, early) || m.Offset != 64<<10 {
				t.Fatalf("Ping %+v, %v; want the early form with %q and window 64 KiB", m, err, early)
			}
			send(t, peer, ping.Return(), tc.pong)
			go func() {
				// After the Pong: bytes that go as ordinary data.
				c.Write(rest)
			}()
			tc.check(t, peer, c)
			if tc.closing != "" {
				c.Close()
				if tc.closing != "g2" {
					m, err := portal.DecodeG3(receive(t, peer).Payload(), true)
					if err != nil || m.Tag != portal.TagDisconnect || m.HasTotal != (tc.closing == "ext") || (m.HasTotal && m.Offset != uint64(len(all))) {
						t.Fatalf("got %+v, %v; want the Disconnect", m, err)
					}
					total := int64(-1)
					if m.HasTotal {
						total = 0
					}
					send(t, peer, ping.Return(), portal.AppendDisconnect(nil, total))
				}
			}
			// The next Ping tells what the inlet learnt from this Pong.
			c2 := earlyConn(t, in, []byte("x"))
			defer c2.Close()
			p := receive(t, peer).Payload()
			if m, err := portal.DecodeG3(p, false); err != nil || m.Tag != portal.TagPing || m.Early != tc.learnt {
				t.Fatalf("next Ping % x (%+v, %v): early form %v, want %v", p, m, err, m.Early, tc.learnt)
			}
		})
	}
}

// TestOutletTakesEarlyData plays an ockamhub inlet against Go outlets: a
// G3 one writes the early bytes to its target before its Pong, says so,
// needs no Credit, and the stream continues at their end; a G2 one
// answers the early Ping as a handshake (it cannot acknowledge: the inlet
// sends them as data); one without the extension answers as a 2021
// outlet.
func TestOutletTakesEarlyData(t *testing.T) {
	early := []byte("early bytes")
	for _, tc := range []struct {
		name string
		cfg  portal.OutletConfig
		want string // what the target reads
	}{
		{"G3", portal.OutletConfig{}, "early bytes+data"},
		{"G3 without the extension", portal.OutletConfig{Options: portal.Options{NoExtension: true}}, "early bytes"},
		{"G2", portal.OutletConfig{Generation: portal.G2}, "early bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := node.New(node.Config{})
			defer n.Close()
			got := make(chan []byte, 1)
			tc.cfg.Target = serveTCP(t, func(c net.Conn) {
				b := make([]byte, len(tc.want))
				k, _ := io.ReadFull(c, b)
				got <- b[:k]
			})
			o, err := portal.NewOutlet(n, tc.cfg)
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
			route := pong.Return()
			switch tc.name {
			case "G3":
				m, err := portal.DecodeG3(pong.Payload(), true)
				if err != nil || m.Tag != portal.TagPong || m.Ext == nil || m.Ext.Features&portal.FeatureEarlyData == 0 || m.Ext.Early != uint64(len(early)) {
					t.Fatalf("Pong %+v (%+v), %v; want one that took %d early bytes", m, m.Ext, err, len(early))
				}
				// No Credit: the stream goes on at the end of the early bytes.
				send(t, mb, route, portal.AppendData(nil, uint64(len(early)), []byte("+data")))
			case "G3 without the extension":
				if !bytes.Equal(pong.Payload(), []byte{0x01}) {
					t.Fatalf("Pong % x, want the 2021 01", pong.Payload())
				}
				send(t, mb, route, portal.AppendPayload(nil, early))
			case "G2":
				if !bytes.Equal(pong.Payload(), portal.G2Handshake) {
					t.Fatalf("answer % x, want the G2 handshake", pong.Payload())
				}
				send(t, mb, route, portal.AppendG2Data(nil, early))
			}
			if b := <-got; string(b) != tc.want {
				t.Fatalf("target got %q, want %q", b, tc.want)
			}
		})
	}
}
