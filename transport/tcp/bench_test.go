package tcp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// The benchmarks of the hot path: a node with inline workers (an echo
// service, a forwarder) behind the transport, and raw clients that write
// pre-encoded frames over loopback TCP, so that the figures are the
// transport's (read, decode, route, write), not a client library's.

// benchRelay is a listening node with echo_service and a forwarder
// "fwd" that relays to the route set with setTarget.
type benchRelay struct {
	node   *node.Node
	tr     *tcp.Transport
	addr   string
	target routing.Route
}

func newBenchRelay(b testing.TB, cfg tcp.Config) *benchRelay {
	b.Helper()
	n := node.New(node.Config{NoApp: true})
	tr, err := tcp.New(n, cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := &benchRelay{node: n, tr: tr}
	ctx := context.Background()
	if err := echo.Start(ctx, n, "", true); err != nil {
		b.Fatal(err)
	}
	fwd := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		tm := m.Transport()
		tm.Onward = r.target
		return s.Forward(ctx, tm)
	})
	if _, err := n.StartWorkerConfig(ctx, fwd, node.WorkerConfig{Addresses: []string{"fwd"}, Inline: true}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go tr.Serve(ln)
	r.addr = ln.Addr().String()
	b.Cleanup(func() { tr.Close(); n.Close() })
	return r
}

func (r *benchRelay) dial(b testing.TB) net.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", r.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return nc
}

// dialTarget connects the connection the forwarder relays to.
func (r *benchRelay) dialTarget(tb testing.TB) net.Conn {
	tb.Helper()
	recv := r.dial(tb)
	// The receiver's connection, as the relay names it.
	r.target = routing.Route{routing.TCPAddress(recv.LocalAddr().String()), routing.LocalAddress("r0000000")}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(r.tr.Connections(), r.target[0]) {
		if time.Now().After(deadline) {
			tb.Fatal("the relay never saw the connection")
		}
		runtime.Gosched()
	}
	return recv
}

func benchFrame(b testing.TB, onward, ret routing.Route, size int) []byte {
	b.Helper()
	m := routing.TransportMessage{Version: 1, Onward: onward, Return: ret, Payload: make([]byte, size)}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// readFrames reads n frames from nc, discarding them.
func readFrames(nc net.Conn, n int) error {
	br := bufio.NewReaderSize(nc, 128<<10)
	for range n {
		h, err := br.Peek(2)
		if err != nil {
			return err
		}
		if _, err := br.Discard(2 + int(binary.BigEndian.Uint16(h))); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkEchoOneInFlight: one frame at a time to the inline echo
// service; ns/op is the round trip (the reply is written by the reading
// goroutine itself, without a hand-off).
func BenchmarkEchoOneInFlight(b *testing.B) {
	r := newBenchRelay(b, tcp.Config{})
	nc := r.dial(b)
	f := benchFrame(b, routing.Route{routing.LocalAddress("echo_service")}, routing.Route{routing.LocalAddress("c0000000")}, 100)
	reply := make([]byte, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(f); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, reply[:2]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, reply[:binary.BigEndian.Uint16(reply)]); err != nil {
			b.Fatal(err)
		}
	}
}

// benchForward sends b.N frames of size-byte payloads through the
// forwarder from one connection to another, pipelined (TCP back pressure
// is the only window), and reports messages per second.
func benchForward(b *testing.B, cfg tcp.Config, size int) {
	r := newBenchRelay(b, cfg)
	recv := r.dialTarget(b)
	send := r.dial(b)
	f := benchFrame(b, routing.Route{routing.LocalAddress("fwd")}, routing.Route{routing.LocalAddress("s0000000")}, size)
	per := max(1, (64<<10)/len(f))
	batch := make([]byte, 0, per*len(f))
	for range per {
		batch = append(batch, f...)
	}
	done := make(chan error, 1)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- readFrames(recv, b.N) }()
	for left := b.N; left > 0; {
		k := min(left, per)
		if _, err := send.Write(batch[:k*len(f)]); err != nil {
			b.Fatal(err)
		}
		left -= k
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkForward100: 100-byte messages pipelined through a forwarder:
// the reader queues what it routes while more frames are buffered and
// writes it, one write per destination, before it reads again.
func BenchmarkForward100(b *testing.B) { benchForward(b, tcp.Config{}, 100) }

// BenchmarkForward60K: 60,000-byte messages through a forwarder, with the
// frames' memory reused (ReuseBodies: donated read buffers, payloads
// written from where they lie with writev) and without (a new body per
// frame).
func BenchmarkForward60K(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		name := "alloc"
		if reuse {
			name = "reuse"
		}
		b.Run(name, func(b *testing.B) { benchForward(b, tcp.Config{ReuseBodies: reuse}, 60000) })
	}
}
