package portal_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Offsets of the 32-hex worker addresses in the §7 frames: the onward
// route's first address, and the return route's after a one-address onward
// route of a 32-hex address, or of "outlet".
const (
	offOnward       = 6
	offReturn       = 41
	offReturnOutlet = 15
	hexLen          = 32
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// with returns frame with a 32-byte address replaced at off.
func with(frame []byte, off int, addr []byte) []byte {
	b := bytes.Clone(frame)
	copy(b[off:off+hexLen], addr)
	return b
}

// readFrame reads one whole frame (header included) from br.
func readFrame(t *testing.T, c net.Conn, br *bufio.Reader) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	body, err := tcp.ReadFrame(br, tcp.MaxFrameSize)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
}

// expectNoFrame checks that nothing more arrives for a while, as after a
// Disconnect (portals.md §12.5).
func expectNoFrame(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if b, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after Disconnect: got %02x, %v; want nothing", b, err)
	}
}

// helloWorld is a target that reads "hello", answers "world", and reports
// when its client closes.
func helloWorld(t *testing.T, closed chan<- struct{}) string {
	return serveTCP(t, func(c net.Conn) {
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
			t.Errorf("target read %q, %v", b, err)
			return
		}
		c.Write([]byte("world"))
		io.Copy(io.Discard, c)
		closed <- struct{}{}
	})
}

// TestOutletSequence plays the 2021 Rust inlet node of portals.md §5.1/§5.2
// byte for byte against a Go outlet, directly over TCP (example 02).
//
// "G3-offer" is a default outlet, which offers the flow-control extension
// in its Pong: the 2021 inlet reads a Pong (trailing bytes ignored), never
// answers the offer, and the outlet must then speak plain G3 to it.
func TestOutletSequence(t *testing.T) {
	for _, tc := range []struct {
		name  string
		gen   portal.Generation
		file  string
		offer bool
	}{{"G3", portal.G3, "portal-g3-sequence.hex", false}, {"G2", portal.G2, "portal-g2-sequence.hex", false}, {"G3-offer", portal.G3, "portal-g3-sequence.hex", true}} {
		t.Run(tc.name, func(t *testing.T) {
			v := load(t, tc.file).Segments
			closed := make(chan struct{}, 1)
			n := node.New(node.Config{})
			tr, err := tcp.New(n, tcp.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { tr.Close(); n.Close() }()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go tr.Serve(ln)
			o, err := portal.NewOutlet(n, portal.OutletConfig{Target: helloWorld(t, closed), Generation: tc.gen, Options: portal.Options{NoExtension: !tc.offer}})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			c.Write(v["ping"])
			pong := readFrame(t, c, br)
			if tc.offer {
				// The 2021 decoder reads a Pong and ignores the rest.
				m, _, err := routing.DecodeMessage(pong[2:])
				if err != nil {
					t.Fatal(err)
				}
				if msg, err := portal.DecodeG3(m.Payload, false); err != nil || msg.Tag != portal.TagPong || msg.Ext == nil {
					t.Fatalf("pong payload % x: %v", m.Payload, err)
				}
				m.Payload = portal.AppendPong(nil, nil) // as a 2021 outlet's, for the checks below
				if pong, err = tcp.AppendFrame(nil, &m, tcp.MaxFrameSize); err != nil {
					t.Fatal(err)
				}
			}
			if len(pong) != len(v["pong"]) {
				t.Fatalf("pong % x, want % x", pong, v["pong"])
			}
			O := pong[offReturn : offReturn+hexLen]
			if !hex32.Match(O) {
				t.Fatalf("outlet worker address %q is not 32 random hex", O)
			}
			if want := with(v["pong"], offReturn, O); !bytes.Equal(pong, want) {
				t.Fatalf("pong\n got % x\nwant % x", pong, want)
			}
			hello, world := v["payload-hello"], v["payload-world"]
			if tc.gen == portal.G2 {
				hello, world = v["data-hello"], v["data-world"]
			}
			// The route to the inlet comes from the Ping only (portals.md §3): a
			// later message claiming another return route changes nothing.
			c.Write(with(with(hello, offOnward, O), offReturn, bytes.Repeat([]byte("e"), hexLen)))
			if got, want := readFrame(t, c, br), with(world, offReturn, O); !bytes.Equal(got, want) {
				t.Fatalf("world\n got % x\nwant % x", got, want)
			}
			if tc.gen == portal.G2 {
				return // G2 has no close signal
			}
			c.Write(with(v["disconnect"], offOnward, O))
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("the target was not closed after Disconnect")
			}
			expectNoFrame(t, c, br)
		})
	}
}

// TestInletSequence plays the 2021 Rust outlet node against a Go inlet,
// which must recognise the generation from the answer.
func TestInletSequence(t *testing.T) {
	for _, tc := range []struct {
		gen  portal.Generation
		file string
	}{{portal.G3, "portal-g3-sequence.hex"}, {portal.G2, "portal-g2-sequence.hex"}} {
		t.Run(tc.gen.String(), func(t *testing.T) {
			v := load(t, tc.file).Segments
			rl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer rl.Close()
			n := node.New(node.Config{})
			tr, err := tcp.New(n, tcp.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { tr.Close(); n.Close() }()
			peer, err := tr.Connect(t.Context(), rl.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			r, err := rl.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			br := bufio.NewReader(r)
			addr, _ := startInlet(t, n, portal.InletConfig{Route: routing.Route{peer, routing.LocalAddress("outlet")}})
			client, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ping := readFrame(t, r, br)
			if len(ping) != len(v["ping"]) {
				t.Fatalf("ping % x, want % x", ping, v["ping"])
			}
			I := ping[offReturnOutlet : offReturnOutlet+hexLen]
			if !hex32.Match(I) {
				t.Fatalf("inlet worker address %q is not 32 random hex", I)
			}
			if want := with(v["ping"], offReturnOutlet, I); !bytes.Equal(ping, want) {
				t.Fatalf("ping\n got % x\nwant % x", ping, want)
			}
			r.Write(with(v["pong"], offOnward, I))
			client.Write([]byte("hello"))
			hello, world := v["payload-hello"], v["payload-world"]
			if tc.gen == portal.G2 {
				hello, world = v["data-hello"], v["data-world"]
			}
			if got, want := readFrame(t, r, br), with(hello, offReturn, I); !bytes.Equal(got, want) {
				t.Fatalf("hello\n got % x\nwant % x", got, want)
			}
			r.Write(with(world, offOnward, I))
			b := make([]byte, 5)
			client.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(client, b); err != nil || string(b) != "world" {
				t.Fatalf("client read %q, %v", b, err)
			}
			if tc.gen == portal.G2 {
				return
			}
			client.Close()
			if got, want := readFrame(t, r, br), with(v["disconnect"], offReturn, I); !bytes.Equal(got, want) {
				t.Fatalf("disconnect\n got % x\nwant % x", got, want)
			}
			expectNoFrame(t, r, br)
		})
	}
}
