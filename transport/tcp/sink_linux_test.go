//go:build linux

package tcp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Splicing into workers (node.SpliceSink, sink_linux.go).

// testSink is a node.SpliceSink whose messages' payloads are 'H', then
// a 4-byte length, then that many data bytes, which it writes to a socket
// (out): through SpliceTo when the transport splices them, with a
// blocking write when HandleMessage gets them. It never waits in
// SpliceMessage but for the rest a full socket did not take, which a test
// reads.
type testSink struct {
	out     net.Conn
	rc      syscall.RawConn
	decline atomic.Bool // SpliceMessage says no
	heads   atomic.Int64
	spliced atomic.Int64 // messages taken by SpliceMessage
	partial atomic.Int64 // of which the socket did not take all at once
	handled atomic.Int64 // messages given to HandleMessage
	mu      sync.Mutex   // orders the writes to out
}

const sinkHdr = 5

func (s *testSink) HandleMessage(_ context.Context, _ node.Sender, m *node.Message) error {
	s.handled.Add(1)
	p := m.Payload()
	if len(p) < sinkHdr || p[0] != 'H' || int(binary.BigEndian.Uint32(p[1:])) > len(p)-sinkHdr {
		return nil // not a message for this sink: dropped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.out.Write(p[sinkHdr : sinkHdr+int(binary.BigEndian.Uint32(p[1:]))])
	return err
}

func (s *testSink) SpliceHead(onward routing.Route, head []byte, size int) (int, bool) {
	s.heads.Add(1)
	if len(onward) != 1 || len(head) < sinkHdr || head[0] != 'H' || int(binary.BigEndian.Uint32(head[1:])) != size-sinkHdr {
		return 0, false
	}
	return sinkHdr, true
}

func (s *testSink) SpliceMessage(onward routing.Route, head []byte, src node.SpliceSource) bool {
	if s.decline.Load() {
		return false
	}
	if _, ok := s.SpliceHead(onward, head, len(head)+src.Len()); !ok || len(head) != sinkHdr {
		return false
	}
	s.spliced.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	src.SpliceTo(s.rc)
	if src.Len() > 0 {
		s.partial.Add(1)
		rest, err := io.ReadAll(src)
		if err != nil {
			panic(err)
		}
		s.out.Write(rest)
	}
	return true
}

// sinkNode is a node with a transport (cfg) listening on 127.0.0.1, and a
// testSink at "sink" writing to a loopback connection whose other end it
// returns.
func sinkNode(t *testing.T, cfg tcp.Config) (*node.Node, *tcp.Transport, string, *testSink, net.Conn) {
	t.Helper()
	n := node.New(node.Config{NoApp: true})
	cfg.Logger = testLogger()
	tr, err := tcp.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tr.Serve(ln)
	t.Cleanup(func() { tr.Close(); n.Close() })
	out, in := loopbackPair(t)
	rc, err := out.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	s := &testSink{out: out, rc: rc}
	if _, err := n.StartWorkerConfig(context.Background(), s, node.WorkerConfig{Addresses: []string{"sink"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	return n, tr, ln.Addr().String(), s, in
}

// loopbackPair is the two ends of a TCP connection on 127.0.0.1.
func loopbackPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// sinkFrame is a frame to addr whose payload is the sink's header and
// data.
func sinkFrame(t testing.TB, addr string, data []byte) []byte {
	t.Helper()
	p := append([]byte{'H'}, binary.BigEndian.AppendUint32(nil, uint32(len(data)))...)
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress(addr)},
		Return: routing.Route{routing.LocalAddress("peer")}, Payload: append(p, data...)}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// collect reads want bytes from nc in the background.
func collect(nc net.Conn, want int) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b := make([]byte, want)
		k, _ := io.ReadFull(nc, b)
		ch <- b[:k]
	}()
	return ch
}

// TestSpliceSinkSameBytes: frames of every size for a splicing worker,
// written back to back, reach its socket exactly (spliced or not), and
// most large ones are spliced; with a small socket buffer at the worker's
// end, the socket takes part of a message and the worker reads the rest.
func TestSpliceSinkSameBytes(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(map[bool]string{false: "fast", true: "small-socket"}[small], func(t *testing.T) {
			_, tr, addr, s, in := sinkNode(t, tcp.Config{})
			if small {
				s.out.(*net.TCPConn).SetWriteBuffer(16 << 10)
				in.(*net.TCPConn).SetReadBuffer(16 << 10)
			}
			var want, frames []byte
			sizes := []int{65000, 60000, 100, 20000, 60000, 16000, 17000, 60000, 1, 60000, 60000, 40000}
			for range 8 {
				for _, k := range sizes {
					d := make([]byte, k)
					rand.Read(d)
					want = append(want, d...)
					frames = append(frames, sinkFrame(t, "sink", d)...)
				}
			}
			got := collect(in, len(want))
			src := dialTo(t, addr)
			if _, err := src.Write(frames); err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatalf("the worker's socket got %d bytes, not the %d sent (or not the same)", len(b), len(want))
			}
			// The transport counts a frame once its worker has returned.
			waitFor(t, "every frame to be counted", func() bool { return tr.Stats().FramesIn == uint64(8*len(sizes)) })
			st := tr.Stats()
			if st.Spliced == 0 || st.Spliced != uint64(s.spliced.Load()) {
				t.Fatalf("Spliced = %d, the worker took %d spliced messages; want > 0 and equal", st.Spliced, s.spliced.Load())
			}
			if small && s.partial.Load() == 0 {
				t.Errorf("no spliced message was taken in part by a small socket")
			}
			if total := s.spliced.Load() + s.handled.Load(); total != int64(8*len(sizes)) {
				t.Fatalf("%d messages handled, want %d", total, 8*len(sizes))
			}
			t.Logf("%d of %d messages spliced, %d in part", s.spliced.Load(), 8*len(sizes), s.partial.Load())
			waitFor(t, "the pipes to be given back", func() bool { return tcp.PipesInUse() == 0 })
		})
	}
}

func dialTo(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendSplit writes f in two parts, the first of head bytes, and waits
// between them until the reader has taken a pipe for it: the frame's
// payload is then being spliced.
func sendSplit(t *testing.T, c net.Conn, f []byte, head int) {
	t.Helper()
	if _, err := c.Write(f[:head]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame to take a pipe", func() bool { return tcp.PipesInUse() == 1 })
}

// TestSpliceSinkDeclined: a worker that declines gets the message through
// HandleMessage, the same bytes, read back from the pipe.
func TestSpliceSinkDeclined(t *testing.T) {
	_, tr, addr, s, in := sinkNode(t, tcp.Config{})
	s.decline.Store(true)
	d := make([]byte, 60000)
	rand.Read(d)
	f := sinkFrame(t, "sink", d)
	got := collect(in, len(d))
	src := dialTo(t, addr)
	sendSplit(t, src, f, 1000)
	if _, err := src.Write(f[1000:]); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, d) {
		t.Fatal("a declined message's bytes differ")
	}
	if st := tr.Stats(); st.Spliced != 0 || s.handled.Load() != 1 {
		t.Fatalf("Spliced = %d, handled %d; want 0 and 1", st.Spliced, s.handled.Load())
	}
	waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
}

// TestSpliceSinkStoppedWhilePending: a worker stopped while the payload
// of a frame for it is being spliced does not get it (the route is judged
// again once the frame is whole: dropped as the usual path drops it), and
// the connection carries on with the next frame.
func TestSpliceSinkStoppedWhilePending(t *testing.T) {
	n, tr, addr, s, in := sinkNode(t, tcp.Config{})
	out2, in2 := loopbackPair(t)
	rc2, _ := out2.(*net.TCPConn).SyscallConn()
	s2 := &testSink{out: out2, rc: rc2}
	if _, err := n.StartWorkerConfig(context.Background(), s2, node.WorkerConfig{Addresses: []string{"sink2"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	d := make([]byte, 60000)
	rand.Read(d)
	src := dialTo(t, addr)
	f := sinkFrame(t, "sink", d)
	sendSplit(t, src, f, 20000)
	if err := n.StopWorker(context.Background(), "sink"); err != nil {
		t.Fatal(err)
	}
	d2 := make([]byte, 50000)
	rand.Read(d2)
	got := collect(in2, len(d2))
	if _, err := src.Write(append(f[20000:], sinkFrame(t, "sink2", d2)...)); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, d2) {
		t.Fatal("the next frame's bytes differ")
	}
	if s.spliced.Load()+s.handled.Load() != 0 {
		t.Fatal("the stopped worker got the frame")
	}
	if st := tr.Stats(); st.Unroutable != 1 {
		t.Errorf("Unroutable = %d, want 1", st.Unroutable)
	}
	s.out.Close()
	if k, _ := io.Copy(io.Discard, in); k != 0 {
		t.Fatalf("the stopped worker's socket got %d bytes", k)
	}
	waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
}

// TestSpliceSinkSourceDies: a source that closes in the middle of a
// spliced frame costs only itself: the worker gets nothing, the pipe goes
// back.
func TestSpliceSinkSourceDies(t *testing.T) {
	_, tr, addr, s, _ := sinkNode(t, tcp.Config{})
	d := make([]byte, 60000)
	f := sinkFrame(t, "sink", d)
	src := dialTo(t, addr)
	sendSplit(t, src, f, 30000)
	src.Close()
	waitFor(t, "the connection to close", func() bool { st := tr.Stats(); return st.Accepted == 1 && st.Conns == 0 })
	waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
	if s.spliced.Load()+s.handled.Load() != 0 {
		t.Fatal("the worker got a frame that never completed")
	}
}

// TestSpliceSinkLyingFrames: frames whose lengths lie take the usual path,
// which handles them as before: a TransportMessage whose payload would run
// past its frame closes the connection (malformed), and nothing reaches
// the worker; a payload shorter than its frame (trailing bytes, which
// decoders ignore) and a worker header whose length is not the rest of
// the payload are handled by HandleMessage.
func TestSpliceSinkLyingFrames(t *testing.T) {
	t.Run("payload-past-frame", func(t *testing.T) {
		_, tr, addr, s, _ := sinkNode(t, tcp.Config{})
		f := sinkFrame(t, "sink", make([]byte, 60000))
		// The frame's length says 100 bytes fewer than its body: the
		// payload's length runs past it.
		binary.BigEndian.PutUint16(f, binary.BigEndian.Uint16(f)-100)
		src := dialTo(t, addr)
		if _, err := src.Write(f[:5000]); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Write(f[5000:]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the connection to close", func() bool { st := tr.Stats(); return st.Malformed > 0 && st.Conns == 0 })
		if st := tr.Stats(); st.Malformed != 1 || st.Spliced != 0 {
			t.Fatalf("Malformed = %d, Spliced = %d; want 1 and 0", st.Malformed, st.Spliced)
		}
		if s.heads.Load() != 0 || s.spliced.Load()+s.handled.Load() != 0 {
			t.Fatal("the worker saw a malformed frame")
		}
		waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
	})
	t.Run("trailing-bytes", func(t *testing.T) {
		_, tr, addr, s, in := sinkNode(t, tcp.Config{})
		d := make([]byte, 50000)
		rand.Read(d)
		f := sinkFrame(t, "sink", d)
		f = append(f, make([]byte, 300)...)
		binary.BigEndian.PutUint16(f, binary.BigEndian.Uint16(f)+300)
		got := collect(in, len(d))
		src := dialTo(t, addr)
		if _, err := src.Write(f[:5000]); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Write(f[5000:]); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, d) {
			t.Fatal("bytes differ")
		}
		if st := tr.Stats(); st.Spliced != 0 || s.handled.Load() != 1 || s.heads.Load() != 0 {
			t.Fatalf("Spliced = %d, handled %d, heads %d; want 0, 1, 0", st.Spliced, s.handled.Load(), s.heads.Load())
		}
	})
	t.Run("worker-header-lies", func(t *testing.T) {
		_, tr, addr, s, in := sinkNode(t, tcp.Config{})
		d := make([]byte, 50000)
		rand.Read(d)
		f := sinkFrame(t, "sink", d)
		// The sink's header says 10 bytes fewer: SpliceHead declines,
		// HandleMessage writes what the header says.
		i := bytes.Index(f, []byte{'H', 0, 0, 0xc3, 0x50})
		if i < 0 {
			t.Fatal("header not found")
		}
		binary.BigEndian.PutUint32(f[i+1:], uint32(len(d)-10))
		got := collect(in, len(d)-10)
		src := dialTo(t, addr)
		if _, err := src.Write(f[:5000]); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Write(f[5000:]); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, d[:len(d)-10]) {
			t.Fatal("bytes differ")
		}
		if st := tr.Stats(); st.Spliced != 0 || s.handled.Load() != 1 {
			t.Fatalf("Spliced = %d, handled %d; want 0 and 1", st.Spliced, s.handled.Load())
		}
	})
}

// TestSpliceSinkOff: Config.NoSplice delivers every frame through
// HandleMessage.
func TestSpliceSinkOff(t *testing.T) {
	_, tr, addr, s, in := sinkNode(t, tcp.Config{NoSplice: true})
	var want, frames []byte
	for range 20 {
		d := make([]byte, 60000)
		rand.Read(d)
		want = append(want, d...)
		frames = append(frames, sinkFrame(t, "sink", d)...)
	}
	got := collect(in, len(want))
	src := dialTo(t, addr)
	if _, err := src.Write(frames); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatal("bytes differ")
	}
	if st := tr.Stats(); st.Spliced != 0 || s.heads.Load() != 0 || s.handled.Load() != 20 {
		t.Fatalf("Spliced = %d, heads %d, handled %d; want 0, 0, 20", st.Spliced, s.heads.Load(), s.handled.Load())
	}
}
