//go:build linux

package tcp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of cut-through with frames that are whole in the source socket
// when the reader comes to them (a burst sent while the reader is held):
// after a frame cut through, the next frame's head comes into the pipe
// with its payload and is read from there.

// gateWorker holds the reader that routes a message to it until open is
// closed: the frames sent after that message wait, whole, in the reader's
// socket.
type gateWorker struct{ open chan struct{} }

func (g gateWorker) HandleMessage(ctx context.Context, _ node.Sender, _ *node.Message) error {
	select {
	case <-g.open:
	case <-ctx.Done():
	}
	return nil
}

// newGatedRelay is newBenchRelay with an inline worker "gate", and sockets
// that hold up to 4 MiB each as they receive, so that a burst sent while
// the reader is held at the gate is in its socket when the gate opens.
func newGatedRelay(t *testing.T, cfg tcp.Config) (*benchRelay, chan struct{}) {
	t.Helper()
	cfg.Logger = testLogger()
	n := node.New(node.Config{NoApp: true})
	tr, err := tcp.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &benchRelay{node: n, tr: tr}
	ctx := context.Background()
	if err := echo.Start(ctx, n, "", true); err != nil {
		t.Fatal(err)
	}
	if _, err := n.StartWorkerConfig(ctx, benchForwarder{r}, node.WorkerConfig{Addresses: []string{"fwd"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	if _, err := n.StartWorkerConfig(ctx, gateWorker{open}, node.WorkerConfig{Addresses: []string{"gate"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tr.Serve(ln)
	r.addr = ln.Addr().String()
	t.Cleanup(func() {
		select {
		case <-open:
		default:
			close(open)
		}
		tr.Close()
		n.Close()
	})
	return r, open
}

// gateFrame is a small frame to the gate.
func gateFrame(t testing.TB) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("gate")}, Return: routing.Route{routing.LocalAddress("s")}, Payload: []byte("hold")}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// dialNamed connects to r and returns the connection and the route to it
// through the relay, once the relay knows it.
func dialNamed(t *testing.T, r *benchRelay, name string) (net.Conn, routing.Route) {
	t.Helper()
	nc := r.dial(t)
	to := routing.Route{routing.TCPAddress(nc.LocalAddr().String()), routing.LocalAddress(name)}
	waitFor(t, "the relay to see the connection", func() bool {
		for _, a := range r.tr.Connections() {
			if a == to[0] {
				return true
			}
		}
		return false
	})
	return nc, to
}

// toFrame is a frame of a payload of size bytes (filled with fill) for the
// connection onward[0], by address, not through the forwarder.
func toFrame(t testing.TB, onward routing.Route, fill byte, size int) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: 1, Onward: onward, Return: routing.Route{routing.LocalAddress("s2")}, Payload: bytes.Repeat([]byte{fill}, size)}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// burstRun sends, while the source's reader is held at the gate, a burst
// of large frames to the forwarder's target with, in the middle, two large
// frames to a second connection, and returns what each destination
// received (the source's port made constant) and the frames cut through.
func burstRun(t *testing.T, cfg tcp.Config) (got1, got2 []byte, cut uint64) {
	t.Helper()
	r, open := newGatedRelay(t, cfg)
	recv := r.dialTarget(t)
	recv2, to2 := dialNamed(t, r, "r2")
	src := r.dial(t)
	const n1 = 8
	var stream []byte
	stream = append(stream, gateFrame(t)...)
	for seq := range n1 {
		if seq == 4 {
			stream = append(stream, toFrame(t, to2, 0xa5, 20000)...)
			stream = append(stream, toFrame(t, to2, 0x5a, 17000)...)
		}
		stream = append(stream, seqFrame(t, 0, seq, 17000+seq*500)...)
	}
	sendHeld(t, src, stream)
	close(open)
	got1 = readTranscript(t, recv, n1)
	got2 = readTranscript(t, recv2, 2)
	for i, f := range splitFrames(got1) {
		if _, seq := checkSeq(t, f); seq != i {
			t.Fatalf("frame %d, want %d", seq, i)
		}
	}
	port := []byte(src.LocalAddr().String())
	got1 = bytes.ReplaceAll(got1, port, []byte("127.0.0.1:00000"))
	got2 = bytes.ReplaceAll(got2, port, []byte("127.0.0.1:00000"))
	return got1, got2, r.tr.Stats().CutThrough
}

// sendHeld writes stream to src while the relay's reader is held at the
// gate, and returns once the relay's socket has all of it (nothing is left
// in src's send queue), or, if it cannot take all of it, once the write has
// been going on for a while: the tests then check the same things, with
// fewer frames whole in the socket at once.
func sendHeld(t *testing.T, src net.Conn, stream []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := src.Write(stream)
		done <- err
	}()
	rc, err := src.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2000; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			done <- nil
		default:
		}
		var q int
		rc.Control(func(fd uintptr) {
			var v int32
			if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
				q = int(v)
			}
		})
		if len(done) > 0 && q == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// splitFrames splits a transcript into its frames.
func splitFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := 2 + (int(b[0])<<8 | int(b[1]))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// TestCutThroughBurstSameBytes: a burst of large frames whole in the
// socket, with frames to another destination between them, reaches each
// destination as the usual path writes it, byte for byte, in order.
func TestCutThroughBurstSameBytes(t *testing.T) {
	want1, want2, _ := burstRun(t, tcp.Config{ReuseBodies: true})
	// Which frames are cut through depends on how the reads fall (the
	// kernel's doing): a run with none is tried again.
	for attempt := 0; ; attempt++ {
		got1, got2, cut := burstRun(t, tcp.Config{ReuseBodies: true, CutThrough: true})
		if !bytes.Equal(got1, want1) {
			t.Fatalf("the target received %d bytes that differ from the usual path's %d", len(got1), len(want1))
		}
		if !bytes.Equal(got2, want2) {
			t.Fatalf("the second destination received %d bytes that differ from the usual path's %d", len(got2), len(want2))
		}
		if cut > 0 {
			t.Logf("%d frames cut through (attempt %d)", cut, attempt)
			return
		}
		if attempt == 20 {
			t.Fatal("no frame was ever cut through")
		}
	}
}

// TestCutThroughThenMalformed: a frame whose head does not decode, right
// after good frames cut through (its head read from the pipe with the last
// one's payload), closes its connection only: the good frames arrive
// intact, nothing after the bad one does.
func TestCutThroughThenMalformed(t *testing.T) {
	r, open := newGatedRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true})
	recv := r.dialTarget(t)
	src := r.dial(t)
	const good = 6
	stream := gateFrame(t)
	for seq := range good {
		stream = append(stream, seqFrame(t, 0, seq, 20000)...)
	}
	// A large frame whose first address claims 65,535 bytes: neither
	// cut-through nor the usual path can decode it.
	bad := make([]byte, 2+20000)
	bad[0], bad[1] = byte(20000>>8), byte(20000&0xff)
	copy(bad[2:], []byte{1, 1, 0, 0xff, 0xff, 0x03})
	stream = append(stream, bad...)
	stream = append(stream, seqFrame(t, 0, good, 20000)...)
	sendHeld(t, src, stream)
	close(open)
	for want := range good {
		if _, seq := checkSeq(t, readOne(t, recv)); seq != want {
			t.Fatalf("frame %d, want %d", seq, want)
		}
	}
	// The source's connection is closed by the relay.
	src.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(src); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the source's connection: %v", err)
	}
	waitFor(t, "the source's connection to go", func() bool { return len(r.tr.Connections()) == 1 })
	s := r.tr.Stats()
	if s.Malformed != 1 {
		t.Errorf("%d malformed frames, want 1", s.Malformed)
	}
	if s.FramesOut != good {
		t.Errorf("%d frames written, want %d", s.FramesOut, good)
	}
	if tcp.PipesInUse() != 0 {
		t.Errorf("%d pipes still taken", tcp.PipesInUse())
	}
	t.Logf("%d of the good frames cut through", s.CutThrough)
}
