package loadgen_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/loadgen"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// serveOn runs serve on a new 127.0.0.1 listener until the test ends.
func serveOn(t *testing.T, serve func(net.Listener) error, close func() error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	t.Cleanup(func() {
		close()
		if err := <-done; !errors.Is(err, loadgen.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// frames returns n frames of random sizes, concatenated.
func frames(t *testing.T, n int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var b []byte
	for i := range n {
		p := make([]byte, rng.IntN(3000))
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		m := routing.TransportMessage{
			Onward:  routing.Route{routing.LocalAddress("echo_service")},
			Return:  routing.Route{routing.LocalAddress("c" + string(rune('a'+i%26)))},
			Payload: p,
		}
		var err error
		if b, err = tcp.AppendFrame(b, &m, 0); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// exchange writes in to c while reading len(in) bytes back.
func exchange(t *testing.T, w, r net.Conn, in []byte) []byte {
	t.Helper()
	w.SetDeadline(time.Now().Add(10 * time.Second))
	r.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() {
		// Uneven writes, so that frames arrive split.
		rest := in
		for len(rest) > 0 {
			n := min(len(rest), 1+len(rest)%7919)
			if _, err := w.Write(rest[:n]); err != nil {
				errc <- err
				return
			}
			rest = rest[n:]
		}
		errc <- nil
	}()
	out := make([]byte, len(in))
	if _, err := io.ReadFull(r, out); err != nil {
		t.Fatalf("reading back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing: %v", err)
	}
	return out
}

// TestRelayEcho sends frames through the relay hop to the echo server:
// every byte comes back, in order.
func TestRelayEcho(t *testing.T) {
	es := &loadgen.EchoServer{}
	echoAddr := serveOn(t, es.Serve, es.Close)
	rl := &loadgen.Relay{Upstream: echoAddr}
	relayAddr := serveOn(t, rl.Serve, rl.Close)
	for _, addr := range []string{echoAddr, relayAddr} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		in := frames(t, 500)
		out := exchange(t, nc, nc, in)
		if !bytes.Equal(in, out) {
			t.Errorf("%s: %d bytes in, %d bytes back, not equal", addr, len(in), len(out))
		}
		nc.Close()
	}
}

// TestPairRelay: what one side of a pair writes, the other reads, both
// ways.
func TestPairRelay(t *testing.T) {
	p := loadgen.NewPairRelay()
	addr := serveOn(t, p.Serve, p.Close)
	a, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Give the relay time to accept a first, so that the pair is (a, b).
	time.Sleep(50 * time.Millisecond)
	b, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	in := frames(t, 300)
	if out := exchange(t, a, b, in); !bytes.Equal(in, out) {
		t.Errorf("a→b: %d bytes in, %d bytes out, not equal", len(in), len(out))
	}
	if out := exchange(t, b, a, in[:len(in)/2]); !bytes.Equal(in[:len(in)/2], out) {
		t.Errorf("b→a: bytes differ")
	}
}

// readFrames reads n frames from r and decodes them.
func readFrames(t *testing.T, r net.Conn, n int) []routing.TransportMessage {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	out := make([]routing.TransportMessage, n)
	for i := range out {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		body := make([]byte, int(hdr[0])<<8|int(hdr[1]))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		m, _, err := routing.DecodeMessage(body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		out[i] = m
	}
	return out
}

// TestFrameEchoServer: every request comes back as the echo service's
// reply (routes swapped, payload unchanged), in order, whatever the way
// the frames were split.
func TestFrameEchoServer(t *testing.T) {
	fs := &loadgen.FrameEchoServer{}
	addr := serveOn(t, fs.Serve, fs.Close)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	in := frames(t, 300)
	go func() {
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)%7919)
			if _, err := nc.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	got := readFrames(t, nc, 300)
	for i, b := 0, in; i < 300; i++ {
		n := int(b[0])<<8 | int(b[1])
		req, _, err := routing.DecodeMessage(b[2 : 2+n])
		if err != nil {
			t.Fatal(err)
		}
		b = b[2+n:]
		if !got[i].Onward.Equal(req.Return) || !got[i].Return.Equal(req.Onward) || !bytes.Equal(got[i].Payload, req.Payload) {
			t.Fatalf("reply %d: %v %v, want %v %v", i, got[i].Onward, got[i].Return, req.Return, req.Onward)
		}
	}
}

// TestFramePairRelay: frames cross the pair decoded and re-encoded, with
// the onward route's head popped (when more follows) and an alias
// stand-in at the head of the return route, both ways.
func TestFramePairRelay(t *testing.T) {
	p := loadgen.NewFramePairRelay()
	addr := serveOn(t, p.Serve, p.Close)
	a, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Either pairing order will do: both directions are checked alike.
	b, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m := routing.TransportMessage{
		Onward:  routing.Route{routing.LocalAddress("00000000"), routing.LocalAddress("r0000001")},
		Return:  routing.Route{routing.LocalAddress("s0000001")},
		Payload: []byte("hello"),
	}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		if _, err := dir[0].Write(f); err != nil {
			t.Fatal(err)
		}
		got := readFrames(t, dir[1], 1)[0]
		if want := routing.MustParseRoute("0#r0000001"); !got.Onward.Equal(want) {
			t.Errorf("onward %v, want %v", got.Onward, want)
		}
		if want := routing.MustParseRoute("0#00000000 => 0#s0000001"); !got.Return.Equal(want) {
			t.Errorf("return %v, want %v", got.Return, want)
		}
		if string(got.Payload) != "hello" {
			t.Errorf("payload %q", got.Payload)
		}
	}
}
