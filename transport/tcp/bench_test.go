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
	if _, err := n.StartWorkerConfig(ctx, benchForwarder{r}, node.WorkerConfig{Addresses: []string{"fwd"}, Inline: true}); err != nil {
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

// benchForwarder relays everything to the relay's target, as a hub's
// forwarder does; it is a node.RouteRewriter, so frames to it may be cut
// through (Config.CutThrough).
type benchForwarder struct{ r *benchRelay }

func (f benchForwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	tm := m.Transport()
	tm.Onward = f.r.target
	return s.Forward(ctx, tm)
}

func (f benchForwarder) RewriteOnward(routing.Route) (routing.Route, bool) { return f.r.target, true }
func (f benchForwarder) Relayed()                                          {}

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
func BenchmarkEchoOneInFlight(b *testing.B) { benchEchoOneInFlight(b, tcp.Config{}) }

// BenchmarkEchoOneInFlightHub: BenchmarkEchoOneInFlight with the
// transport configured as a hub's (CutThrough, which relays small frames
// by their bytes, and ReuseBodies): frames to echo_service are not
// relayed, and the look relay takes at them (relay.go) is part of the
// round trip; allocs/op counts what the reader allocates per echo.
func BenchmarkEchoOneInFlightHub(b *testing.B) {
	benchEchoOneInFlight(b, tcp.Config{CutThrough: true, ReuseBodies: true})
}

func benchEchoOneInFlight(b *testing.B, cfg tcp.Config) {
	r := newBenchRelay(b, cfg)
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
	benchPipe(b, send, recv, f, size)
	if cfg.CutThrough {
		b.ReportMetric(float64(r.tr.Stats().CutThrough)/float64(b.N), "cut/op")
	}
}

// benchPipe writes b.N copies of frame f (of a size-byte payload) to send,
// pipelined, while recv reads as many frames, and reports messages per
// second.
func benchPipe(b *testing.B, send, recv net.Conn, f []byte, size int) {
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
// writes it, one write per destination, before it reads again. "route"
// decodes each message, routes it through the forwarder and encodes it
// when written; "relay" (CutThrough, as hubs run) queues each frame as its
// outgoing frame, its head re-encoded from a cache (relay.go).
func BenchmarkForward100(b *testing.B) {
	b.Run("route", func(b *testing.B) { benchForward(b, tcp.Config{}, 100) })
	b.Run("relay", func(b *testing.B) { benchForward(b, tcp.Config{CutThrough: true}, 100) })
}

// BenchmarkForward60K: 60,000-byte messages through a forwarder, with the
// frames' memory reused (ReuseBodies: donated read buffers, payloads
// written from where they lie with writev), without (a new body per
// frame), and cut through (CutThrough, on Linux: payloads spliced from
// socket to socket, never read into memory).
func BenchmarkForward60K(b *testing.B) {
	for _, mode := range []struct {
		name string
		cfg  tcp.Config
	}{
		{"alloc", tcp.Config{}},
		{"reuse", tcp.Config{ReuseBodies: true}},
		{"cut", tcp.Config{ReuseBodies: true, CutThrough: true}},
	} {
		b.Run(mode.name, func(b *testing.B) { benchForward(b, mode.cfg, 60000) })
	}
}

// BenchmarkRelayCopy60K is the reference for BenchmarkForward60K: the same
// frames through a plain relay hop that does no framing, in this process.
// "splice" is io.Copy between the two sockets (splice(2) on Linux: the
// kernel moves the pages, as the bench's relay baseline does); "copy"
// reads into a 64 KiB buffer and writes it out, the two kernel copies the
// hub makes for every byte it forwards. The gap between the two is what
// splicing payloads could at most win (docs/benchmarks.md, issue 15 bulk).
func BenchmarkRelayCopy60K(b *testing.B) {
	for _, mode := range []string{"splice", "copy"} {
		b.Run(mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			dial := func() (net.Conn, net.Conn) {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				ac, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { nc.Close(); ac.Close() })
				return nc, ac
			}
			recv, toRecv := dial()
			send, fromSend := dial()
			relayed := make(chan struct{})
			go func() {
				defer close(relayed)
				if mode == "splice" {
					io.Copy(toRecv, fromSend)
				} else {
					// Hide ReadFrom and WriteTo: a plain read and write.
					io.CopyBuffer(struct{ io.Writer }{toRecv}, struct{ io.Reader }{fromSend}, make([]byte, 64<<10))
				}
			}()
			f := benchFrame(b, routing.Route{routing.LocalAddress("00000000")}, routing.Route{routing.LocalAddress("s0000000")}, 60000)
			benchPipe(b, send, recv, f, 60000)
			send.Close()
			<-relayed
		})
	}
}
