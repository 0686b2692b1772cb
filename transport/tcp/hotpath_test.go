package tcp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of the write and read paths: direct writes from the routing
// goroutine, deferred batches, writer goroutines for a backlog, reused
// frame memory, graceful shutdown with a backlog, idle footprint.

// fwdFrame is a frame for the relay's forwarder carrying payload.
func fwdFrame(t testing.TB, payload []byte) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")},
		Return: routing.Route{routing.LocalAddress("s0000000")}, Payload: payload}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readPayloads reads n frames from nc and returns their payloads.
func readPayloads(t *testing.T, nc net.Conn, n int) [][]byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	out := make([][]byte, 0, n)
	for range n {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		m, _, err := routing.DecodeMessage(body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Payload)
	}
	return out
}

// TestReuseBodiesBacklogIntact: with ReuseBodies, large frames relayed to
// a peer that is not reading pile up (partial direct writes, a writer
// goroutine, a full queue); every payload still arrives intact once the
// peer reads, though the hub went on reading frames into reused buffers.
func TestReuseBodiesBacklogIntact(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		r := newBenchRelay(t, tcp.Config{ReuseBodies: reuse, SendQueueBytes: 256 << 10})
		recv := r.dialTarget(t)
		recv.(*net.TCPConn).SetReadBuffer(16 << 10) // a small window: a backlog at once
		send := r.dial(t)
		const n = 150
		go func() {
			for i := range n {
				if _, err := send.Write(fwdFrame(t, bytes.Repeat([]byte{byte(i)}, 60000))); err != nil {
					return
				}
			}
		}()
		// Let the backlog build before reading, until the hub stops
		// reading (its queue, the sockets and the sender are all full).
		last, still := uint64(0), 0
		for deadline := time.Now().Add(5 * time.Second); still < 20 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond) // polling a counter, with a deadline
			if in := r.tr.Stats().FramesIn; in != last {
				last, still = in, 0
			} else {
				still++
			}
		}
		for i, p := range readPayloads(t, recv, n) {
			if len(p) != 60000 || p[0] != byte(i) || p[len(p)-1] != byte(i) || !bytes.Equal(p, bytes.Repeat([]byte{byte(i)}, 60000)) {
				t.Fatalf("reuse=%v: payload %d corrupted (starts %d)", reuse, i, p[0])
			}
		}
	}
}

// TestOrderPerSender: several senders pipeline small frames through the
// forwarder to one receiver; each sender's frames arrive complete and in
// order, whichever goroutine wrote them (direct, deferred, writer).
func TestOrderPerSender(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{})
	recv := r.dialTarget(t)
	const senders, each = 4, 3000
	for s := range senders {
		nc := r.dial(t)
		go func() {
			var batch []byte
			for i := range each {
				p := make([]byte, 8)
				binary.BigEndian.PutUint32(p, uint32(s))
				binary.BigEndian.PutUint32(p[4:], uint32(i))
				batch = append(batch, fwdFrame(t, p)...)
				if len(batch) > 8<<10 || i == each-1 {
					if _, err := nc.Write(batch); err != nil {
						return
					}
					batch = batch[:0]
				}
			}
		}()
	}
	next := make([]uint32, senders)
	for _, p := range readPayloads(t, recv, senders*each) {
		s, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if i != next[s] {
			t.Fatalf("sender %d: frame %d after %d", s, i, next[s])
		}
		next[s]++
	}
}

// TestShutdownWritesBacklog: Shutdown writes what a connection has queued
// (here more than its socket takes) before closing it.
func TestShutdownWritesBacklog(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{})
	recv := r.dialTarget(t)
	send := r.dial(t)
	const n = 40
	var frames []byte
	for i := range n {
		frames = append(frames, fwdFrame(t, bytes.Repeat([]byte{byte(i)}, 30000))...)
	}
	if _, err := send.Write(frames); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.tr.Stats().FramesIn < n {
		if time.Now().After(deadline) {
			t.Fatalf("the relay read %d frames of %d", r.tr.Stats().FramesIn, n)
		}
		runtime.Gosched()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- r.tr.Shutdown(ctx) }()
	for i, p := range readPayloads(t, recv, n) {
		if p[0] != byte(i) {
			t.Fatalf("payload %d starts %d", i, p[0])
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := recv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the backlog: %v, want EOF", err)
	}
}

// TestIdleConnectionsKeepNoWriter: once idle, a connection costs one
// goroutine (its reader): writers are started only for a backlog.
func TestIdleConnectionsKeepNoWriter(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{})
	base := runtime.NumGoroutine()
	const conns = 40
	echoReq := benchFrame(t, routing.Route{routing.LocalAddress("echo_service")}, routing.Route{routing.LocalAddress("c0000000")}, 100)
	for range conns {
		nc := r.dial(t)
		if _, err := nc.Write(echoReq); err != nil {
			t.Fatal(err)
		}
		readPayloads(t, nc, 1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		extra := runtime.NumGoroutine() - base
		if extra <= conns+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle connections", extra, conns)
		}
		time.Sleep(10 * time.Millisecond) // polling a count, with a deadline
	}
}

// TestDeferredNotHeldBehindFullMailbox: a reader that has deferred the
// write of a forwarded message, and then meets a full mailbox, writes the
// message before it waits; here the mailbox's worker waits for that very
// message to arrive, so holding it back would deadlock.
func TestDeferredNotHeldBehindFullMailbox(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{})
	recv := r.dialTarget(t)
	arrived := make(chan struct{})
	slow := node.HandlerFunc(func(ctx context.Context, _ node.Sender, _ *node.Message) error {
		select {
		case <-arrived:
		case <-ctx.Done():
		}
		return nil
	})
	if _, err := r.node.StartWorkerConfig(t.Context(), slow, node.WorkerConfig{Addresses: []string{"slow"}, MailboxSize: 1}); err != nil {
		t.Fatal(err)
	}
	send := r.dial(t)
	toSlow := benchFrame(t, routing.Route{routing.LocalAddress("slow")}, routing.Route{routing.LocalAddress("s0000000")}, 8)
	// One write: the forwarded frame first (deferred: more input is
	// buffered), then enough for the slow worker to fill its mailbox and
	// block the reader.
	in := fwdFrame(t, []byte("first!!!"))
	for range 4 {
		in = append(in, toSlow...)
	}
	if _, err := send.Write(in); err != nil {
		t.Fatal(err)
	}
	if p := readPayloads(t, recv, 1)[0]; string(p) != "first!!!" {
		t.Fatalf("got %q", p)
	}
	close(arrived)
}

// routeFrame is a frame for the relay's forwarder with no payload and a
// return route of k addresses whose values spell i: large enough (k=300:
// about 20 KB) to be read into a reused body, with nothing in its payload.
func routeFrame(t testing.TB, i, k int) []byte {
	t.Helper()
	ret := make(routing.Route, k)
	for j := range ret {
		ret[j] = routing.LocalAddress(string(bytes.Repeat([]byte{'a' + byte((i+j)%26)}, 60)))
	}
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")}, Return: ret}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestReuseBodiesRoutesIntact: with ReuseBodies, a large frame whose bytes
// are its routes (its payload empty) is relayed to a peer that is not
// reading; its routes, decoded in place in the reused buffer, must still be
// intact when it is written, though the hub goes on reading large frames
// (which overwrite released buffers) meanwhile.
func TestReuseBodiesRoutesIntact(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, SendQueueBytes: 4 << 20})
	recv := r.dialTarget(t)
	recv.(*net.TCPConn).SetReadBuffer(16 << 10)
	send := r.dial(t)
	const n, k = 120, 300
	go func() {
		for i := range n {
			f := routeFrame(t, i, k)
			if i%2 == 1 {
				f = fwdFrame(t, bytes.Repeat([]byte{'#'}, 60000))
			}
			if _, err := send.Write(f); err != nil {
				return
			}
		}
	}()
	last, still := uint64(0), 0
	for deadline := time.Now().Add(5 * time.Second); still < 20 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // polling a counter, with a deadline
		if in := r.tr.Stats().FramesIn; in != last {
			last, still = in, 0
		} else {
			still++
		}
	}
	recv.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(recv)
	for i := range n {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("after %d frames: %v", i, err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("after %d frames: %v", i, err)
		}
		m, _, err := routing.DecodeMessage(body)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i%2 == 1 {
			if !bytes.Equal(m.Payload, bytes.Repeat([]byte{'#'}, 60000)) {
				t.Fatalf("frame %d: payload corrupted", i)
			}
			continue
		}
		if len(m.Return) != k+1 {
			t.Fatalf("frame %d: return route of %d addresses, want %d", i, len(m.Return), k+1)
		}
		for j, a := range m.Return[1:] {
			if want := strings.Repeat(string(rune('a'+(i+j)%26)), 60); a.Value != want {
				t.Fatalf("frame %d: return address %d corrupted: %.20q…", i, j, a.Value)
			}
		}
	}
}

// TestReuseBodiesQueueBytesBound: a queued message whose frame lies in a
// reused 64 KiB buffer holds that buffer until it is written, so it counts
// as the buffer against SendQueueBytes (else a queue of 17 KB frames held
// four times its byte bound).
func TestReuseBodiesQueueBytesBound(t *testing.T) {
	const bound = 256 << 10
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, SendQueueBytes: bound, QueueFullWait: -1})
	recv := r.dialTarget(t)
	recv.(*net.TCPConn).SetReadBuffer(16 << 10)
	send := r.dial(t)
	const n = 1000 // 17 MB: more than the socket buffers take
	var frames []byte
	for i := range n {
		frames = append(frames, fwdFrame(t, bytes.Repeat([]byte{byte(i)}, 17000))...)
	}
	go send.Write(frames)
	// Full queues drop at once (QueueFullWait < 0): the hub reads all.
	for deadline := time.Now().Add(20 * time.Second); r.tr.Stats().FramesIn < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the relay read %d of %d frames", r.tr.Stats().FramesIn, n)
		}
		time.Sleep(time.Millisecond) // polling a counter, with a deadline
	}
	st := r.tr.Stats()
	if st.QueueFull == 0 {
		t.Skip("no message was dropped: this machine's socket buffers took 17 MB, the queue never filled")
	}
	if max := bound / (64 << 10); st.Queued > max {
		t.Fatalf("%d messages of 17 KB queued, each holding a 64 KiB buffer: more than %d (%d bytes)", st.Queued, max, bound)
	}
}

// dropLog records the onward routes of "dropped message" log records.
type dropLog struct {
	mu      sync.Mutex
	onwards []string
}

func (l *dropLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *dropLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "dropped message" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "onward" {
				l.mu.Lock()
				l.onwards = append(l.onwards, a.Value.String())
				l.mu.Unlock()
			}
			return true
		})
	}
	return nil
}
func (l *dropLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *dropLog) WithGroup(string) slog.Handler      { return l }

// TestReuseBodiesDroppedLogIntact: a large unroutable frame is logged with
// its onward route as it arrived, though its reader waited (probe
// damping) while other connections read large frames into reused
// buffers: the frame's buffer is not given back before the log.
func TestReuseBodiesDroppedLogIntact(t *testing.T) {
	logs := &dropLog{}
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, Logger: slog.New(logs),
		ProbeBurst: 1, ProbeRate: 0.001, ProbeDelay: 100 * time.Millisecond, ProbeStrikes: 100})
	// Another connection keeps the relay reading large frames (echoed).
	busy := r.dial(t)
	stop := make(chan struct{})
	defer close(stop)
	go io.Copy(io.Discard, busy)
	go func() {
		f := benchFrame(t, routing.Route{routing.LocalAddress("echo_service")}, routing.Route{routing.LocalAddress("b")}, 60000)
		for i := range f[40:] {
			f[40+i] = '#'
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := busy.Write(f); err != nil {
				return
			}
		}
	}()
	nc := r.dial(t)
	const n = 4
	for i := range n {
		to := routing.Route{routing.LocalAddress(fmt.Sprintf("nowhere-%d-%s", i, strings.Repeat("x", 40)))}
		m := routing.TransportMessage{Version: 1, Onward: to, Return: routing.Route{routing.LocalAddress("s")}, Payload: make([]byte, 20000)}
		f, err := tcp.AppendFrame(nil, &m, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		logs.mu.Lock()
		got := len(logs.onwards)
		logs.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d drops logged", got, n)
		}
		time.Sleep(5 * time.Millisecond) // polling the log, with a deadline
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for i, o := range logs.onwards[:n] {
		if want := fmt.Sprintf("0#nowhere-%d-%s", i, strings.Repeat("x", 40)); o != want {
			t.Errorf("drop %d logged onward %.60q, want %q", i, o, want)
		}
	}
}
