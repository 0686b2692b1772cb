package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of relaying small frames by their bytes (relay.go, with
// Config.CutThrough): the frames written are those the usual path writes,
// the counters the same, and every case the relay leaves alone still
// takes the usual path.

// countingForwarder is a forwarder to its relay's target that counts the
// messages it handled itself and those relayed without it.
type countingForwarder struct {
	r                *benchRelay
	handled, relayed atomic.Int64
}

func (f *countingForwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	f.handled.Add(1)
	tm := m.Transport()
	tm.Onward = f.r.target
	return s.Forward(ctx, tm)
}

func (f *countingForwarder) RewriteOnward(routing.Route) (routing.Route, bool) {
	return f.r.target, true
}

func (f *countingForwarder) Relayed() { f.relayed.Add(1) }

// startCounting starts a countingForwarder at addr on r's node.
func startCounting(t testing.TB, r *benchRelay, addr string) *countingForwarder {
	t.Helper()
	f := &countingForwarder{r: r}
	if _, err := r.node.StartWorkerConfig(context.Background(), f, node.WorkerConfig{Addresses: []string{addr}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	return f
}

// frameOf encodes m as a frame, failing the test if it cannot.
func frameOf(t testing.TB, m routing.TransportMessage) []byte {
	t.Helper()
	f, err := tcp.AppendFrame(nil, &m, tcp.MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// withTail returns frame f with extra bytes after its message (which
// decoders ignore), its length prefix adjusted.
func withTail(f []byte, tail ...byte) []byte {
	out := append(append([]byte(nil), f...), tail...)
	binary.BigEndian.PutUint16(out, uint16(len(out)-tcp.FrameHeaderSize))
	return out
}

// longLength returns the frame of a message with onward and return routes
// and payload p whose payload length is a two-byte varint (not minimal).
func longLength(t testing.TB, onward, ret routing.Route, p []byte) []byte {
	t.Helper()
	if len(p) >= 128 {
		t.Fatal("payload too long for a padded one-byte length")
	}
	m := routing.TransportMessage{Version: 1, Onward: onward, Return: ret}
	body, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	body = append(body[:len(body)-1], byte(len(p))|0x80, 0x00)
	body = append(body, p...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// elixirReturn returns a frame whose return route holds a TCP address in
// the Elixir 7-byte form (normalised to text when relayed).
func elixirReturn(t testing.TB, onward routing.Route, p []byte) []byte {
	t.Helper()
	if len(p) >= 128 {
		t.Fatal("payload too long for a one-byte length")
	}
	body := []byte{1, byte(len(onward))}
	for _, a := range onward {
		body = append(append(body, byte(a.Type), byte(len(a.Value))), a.Value...)
	}
	// 0#s, then 1#10.0.0.1:4000 as Elixir encodes it.
	body = append(body, 2, 0, 1, 's', 1, 7, 0x00, 10, 0, 0, 1, 0xa0, 0x0f)
	body = append(append(body, byte(len(p))), p...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// relayStream is a stream of small frames of every kind the relay sees or
// must leave alone; the frames to cfwd carry payloads "i=N", the last one
// "end". It returns the stream and how many frames reach the target.
func relayStream(t testing.TB, maxFrame int) ([]byte, int) {
	t.Helper()
	fwd := routing.Route{routing.LocalAddress("cfwd"), routing.LocalAddress("ignored")}
	var out []byte
	reach := 0
	for i := range 400 {
		p := []byte(fmt.Sprintf("i=%d;", i))
		p = append(p, bytes.Repeat([]byte{byte(i)}, (i*37)%300)...)
		ret := routing.Route{routing.LocalAddress(fmt.Sprintf("s%d", i%3))}
		switch i % 10 {
		case 0, 1, 2: // plain, routes repeated
			out = append(out, frameOf(t, routing.TransportMessage{Version: 1, Onward: fwd, Return: ret, Payload: p})...)
			reach++
		case 3: // another version as received, and a longer return route
			out = append(out, frameOf(t, routing.TransportMessage{Version: 5, Onward: fwd, Return: append(ret, routing.TCPAddress("10.0.0.1:4000")), Payload: p})...)
			reach++
		case 4: // trailing bytes
			out = append(out, withTail(frameOf(t, routing.TransportMessage{Version: 1, Onward: fwd, Return: ret, Payload: p}), 1, 2, 3)...)
			reach++
		case 5: // a heartbeat, then a padded payload length
			out = append(out, 0, 4, 1, 0, 0, 0)
			out = append(out, longLength(t, fwd, ret, p[:min(len(p), 100)])...)
			reach++
		case 6: // an Elixir TCP address
			out = append(out, elixirReturn(t, fwd, p[:min(len(p), 100)])...)
			reach++
		case 7: // to the echo service: back to the sender, not the target
			out = append(out, frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("echo_service")}, Return: ret, Payload: p})...)
		case 8: // too large once the sender's address is on its return route
			m := routing.TransportMessage{Version: 1, Onward: fwd, Return: ret, Payload: p}
			m.Payload = bytes.Repeat([]byte{'x'}, maxFrame-m.EncodedLen()+len(p)-4)
			out = append(out, frameOf(t, m)...)
		case 9: // an unknown address, then one to the plain forwarder
			if i < 40 {
				out = append(out, frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("nobody")}, Return: ret, Payload: p})...)
			}
			out = append(out, frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")}, Return: ret, Payload: p})...)
			reach++
		}
	}
	out = append(out, frameOf(t, routing.TransportMessage{Version: 1, Onward: fwd, Return: routing.Route{routing.LocalAddress("s0")}, Payload: []byte("end")})...)
	return out, reach + 1
}

// relayRun sends stream through a relay configured by cfg (its target
// named by its TCP address, or by its alias twice with Aliases) and
// returns what the target received (the sender's address replaced by a
// fixed one), the transport's and node's counters, and the counting
// forwarder.
func relayRun(t *testing.T, cfg tcp.Config, stream []byte, count int) ([]byte, tcp.Stats, node.Stats, *countingForwarder) {
	t.Helper()
	cfg.Logger = testLogger()
	r := newBenchRelay(t, cfg)
	f := startCounting(t, r, "cfwd")
	var recv net.Conn
	if cfg.Aliases {
		recv = r.dial(t)
		waitFor(t, "the target's connection", func() bool { return len(r.tr.Connections()) == 1 })
		alias := r.tr.Connections()[0]
		r.target = routing.Route{alias, alias, routing.LocalAddress("r0000000")}
	} else {
		recv = r.dialTarget(t)
	}
	send := r.dial(t)
	go func() {
		// In pieces of varying sizes, so that frames are split anywhere.
		for k, i := 0, 0; k < len(stream); i++ {
			n := min(len(stream)-k, 1+(i*7919)%5000)
			if _, err := send.Write(stream[k : k+n]); err != nil {
				return
			}
			k += n
		}
	}()
	got := readTranscript(t, recv, count)
	m, _, err := routing.DecodeMessage(got[2:])
	if err != nil || len(m.Return) == 0 {
		t.Fatalf("first frame relayed: %v, return route %v", err, m.Return)
	}
	got = bytes.ReplaceAll(got, []byte(m.Return[0].Value), []byte("<sender>"))
	if !bytes.HasSuffix(got, []byte("end")) {
		t.Fatalf("the last frame relayed is not the last sent: % x", got[max(0, len(got)-40):])
	}
	// The echo service's replies go back to the sender; wait for them, so
	// that the counters are complete.
	want := uint64(count + 40)
	waitFor(t, "the replies", func() bool { return r.tr.Stats().FramesOut >= want })
	return got, r.tr.Stats(), r.node.Stats(), f
}

// TestRelaySameBytes: with CutThrough, small frames through a forwarder
// are relayed by their bytes, and the target receives exactly what the
// usual path writes, with the same counters; heartbeats, echo requests,
// unknown addresses, frames too large once relayed, trailing bytes,
// padded lengths and Elixir addresses are all as before.
func TestRelaySameBytes(t *testing.T) {
	const maxFrame = 1000
	stream, count := relayStream(t, maxFrame)
	for _, aliases := range []bool{false, true} {
		t.Run(fmt.Sprintf("aliases=%v", aliases), func(t *testing.T) {
			cfg := tcp.Config{MaxFrameSize: maxFrame, Aliases: aliases}
			want, ws, wn, wf := relayRun(t, cfg, stream, count)
			cfg.CutThrough = true
			got, gs, gn, gf := relayRun(t, cfg, stream, count)
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Fatalf("relayed %d bytes that differ from the usual path's %d from byte %d: % x, want % x", len(got), len(want), i, got[i:min(i+40, len(got))], want[i:min(i+40, len(want))])
			}
			if wf.relayed.Load() != 0 {
				t.Errorf("the usual path relayed %d without the forwarder", wf.relayed.Load())
			}
			if gf.relayed.Load() == 0 {
				t.Error("nothing was relayed by its bytes")
			}
			if g, w := gf.relayed.Load()+gf.handled.Load(), wf.handled.Load(); g != w {
				t.Errorf("the forwarder saw %d messages (%d relayed), want %d", g, gf.relayed.Load(), w)
			}
			t.Logf("%d of %d messages to the forwarder relayed by their bytes", gf.relayed.Load(), wf.handled.Load())
			if gs.FramesIn != ws.FramesIn || gs.FramesOut != ws.FramesOut || gs.BytesIn != ws.BytesIn || gs.BytesOut != ws.BytesOut ||
				gs.Heartbeats != ws.Heartbeats || gs.TooLarge != ws.TooLarge || gs.Unroutable != ws.Unroutable || gs.Malformed != ws.Malformed {
				t.Errorf("transport counters differ: relayed %+v, usual %+v", gs, ws)
			}
			if gs.TooLarge == 0 || gs.Heartbeats == 0 || gs.Unroutable == 0 {
				t.Errorf("the stream missed a case: %+v", gs)
			}
			if gn.Routed != wn.Routed || gn.Unroutable != wn.Unroutable || gn.WorkerErrors != wn.WorkerErrors {
				t.Errorf("node counters differ: relayed %+v, usual %+v", gn, wn)
			}
		})
	}
}

// TestRelayOrderSmallQueue: several senders' small frames through a
// forwarder to one destination whose queue is often full (the relay
// leaves those frames to the usual path, which waits) arrive complete,
// each sender's in order.
func TestRelayOrderSmallQueue(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, SendQueueSize: 4, QueueFullWait: time.Minute, Logger: testLogger()})
	recv := r.dialTarget(t)
	const senders, each = 3, 3000
	for id := range senders {
		nc := r.dial(t)
		go func() {
			var stream []byte
			for seq := range each {
				stream = append(stream, seqFrame(t, id, seq, 8+seq%200)...)
			}
			nc.Write(stream)
		}()
	}
	next := make([]int, senders)
	got := readTranscript(t, recv, senders*each)
	for len(got) > 0 {
		n := tcp.FrameHeaderSize + int(binary.BigEndian.Uint16(got))
		id, seq := checkSeq(t, got[:n])
		if id >= senders || seq != next[id] {
			t.Fatalf("sender %d: frame %d arrived, want %d", id, seq, next[id])
		}
		next[id]++
		got = got[n:]
	}
	if s := r.tr.Stats(); s.QueueFull != 0 {
		t.Errorf("%d messages dropped on a full queue", s.QueueFull)
	}
}

// TestRelayForwarderStops: once a forwarder has stopped, frames with the
// routes the relay has cached go nowhere, as routing would have it.
func TestRelayForwarderStops(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	send := r.dial(t)
	f := startCounting(t, r, "cfwd")
	fwd := routing.Route{routing.LocalAddress("cfwd")}
	ret := routing.Route{routing.LocalAddress("s")}
	frame := func(p string) []byte {
		return frameOf(t, routing.TransportMessage{Version: 1, Onward: fwd, Return: ret, Payload: []byte(p)})
	}
	var burst []byte
	for range 10 {
		burst = append(burst, frame("before")...)
	}
	send.Write(burst)
	for range 10 {
		if _, _, p := decodeFrame(t, readOne(t, recv)); string(p) != "before" {
			t.Fatalf("relayed %q, want before", p)
		}
	}
	if err := r.node.StopWorker(context.Background(), "cfwd"); err != nil {
		t.Fatal(err)
	}
	stopped := f.relayed.Load() + f.handled.Load()
	burst = burst[:0]
	for range 10 {
		burst = append(burst, frame("after")...)
	}
	burst = append(burst, frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")}, Return: ret, Payload: []byte("marker")})...)
	send.Write(burst)
	if _, _, p := decodeFrame(t, readOne(t, recv)); string(p) != "marker" {
		t.Fatalf("relayed %q after the forwarder stopped, want the marker", p)
	}
	if n := f.relayed.Load() + f.handled.Load(); n != stopped {
		t.Errorf("the stopped forwarder saw %d more messages", n-stopped)
	}
}

// decodeFrame decodes a frame (length prefix included).
func decodeFrame(t testing.TB, f []byte) (routing.Route, routing.Route, []byte) {
	t.Helper()
	m, _, err := routing.DecodeMessage(f[tcp.FrameHeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	return m.Onward, m.Return, m.Payload
}

// TestRelayDestinationCloses: a destination that closes while frames are
// relayed to it costs its sender nothing: the sender's connection keeps
// working for the next destination. A sender that sends garbage after
// good frames is closed, and the good frames arrive, whole.
func TestRelayDestinationCloses(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	send := r.dial(t)
	const burst = 2000
	var stream []byte
	for seq := range burst {
		stream = append(stream, seqFrame(t, 0, seq, 100)...)
	}
	go send.Write(stream)
	checkSeq(t, readOne(t, recv))
	recv.Close()
	// Every frame of the burst has been routed (to the destination, or
	// nowhere once it had gone) before the target moves.
	waitFor(t, "the burst", func() bool { return r.tr.Stats().FramesIn == burst })
	recv = r.dialTarget(t)
	send.Write(seqFrame(t, 1, 0, 100))
	if id, seq := checkSeq(t, readOne(t, recv)); id != 1 || seq != 0 {
		t.Fatalf("the new destination got %d/%d first, want 1/0", id, seq)
	}

	garbled := r.dial(t)
	var good []byte
	for seq := range 50 {
		good = append(good, seqFrame(t, 2, seq, 100)...)
	}
	garbage := []byte{0, 5, 200, 1, 2, 3, 4} // version 200: malformed
	go garbled.Write(append(append(good, garbage...), seqFrame(t, 2, 50, 100)...))
	for next := range 50 {
		if id, seq := checkSeq(t, readOne(t, recv)); id != 2 || seq != next {
			t.Fatalf("frame %d/%d arrived, want 2/%d", id, seq, next)
		}
	}
	garbled.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := garbled.Read(make([]byte, 1)); err == nil {
		t.Fatal("the sender of garbage was not closed")
	}
	if s := r.tr.Stats(); s.Malformed != 1 {
		t.Errorf("%d malformed frames counted, want 1", s.Malformed)
	}
	// The first sender's connection is still open.
	send.Write(seqFrame(t, 1, 1, 100))
	if id, seq := checkSeq(t, readOne(t, recv)); id != 1 || seq != 1 {
		t.Fatalf("got %d/%d, want 1/1", id, seq)
	}
}

// TestRelaySlowDestinationIntact: frames relayed to a destination that is
// not reading pile up (partial writes, a writer goroutine, a full queue
// that makes the reader wait) while the reader goes on cutting frames from
// pooled slabs; once the destination reads, every frame arrives whole and
// in order, none dropped.
func TestRelaySlowDestinationIntact(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, QueueFullWait: time.Minute, Logger: testLogger()})
	recv := r.dialTarget(t)
	send := r.dial(t)
	const count = 60000
	go func() {
		var stream []byte
		for seq := range count {
			stream = append(stream, seqFrame(t, 0, seq, 8+seq%300)...)
		}
		send.Write(stream)
	}()
	// A backlog forms once the kernel's buffers are full (some MB); should
	// they take everything, the frames are checked all the same.
	backlog := false
	waitFor(t, "a backlog", func() bool {
		s := r.tr.Stats()
		backlog = s.Queued >= 100
		return backlog || s.FramesIn == count
	})
	t.Logf("backlog seen: %v", backlog)
	got := readTranscript(t, recv, count)
	for seq := 0; len(got) > 0; seq++ {
		n := tcp.FrameHeaderSize + int(binary.BigEndian.Uint16(got))
		if id, s := checkSeq(t, got[:n]); id != 0 || s != seq {
			t.Fatalf("frame %d/%d arrived, want 0/%d", id, s, seq)
		}
		got = got[n:]
	}
	s := r.tr.Stats()
	if s.QueueFull != 0 {
		t.Errorf("%d messages dropped on a full queue", s.QueueFull)
	}
	// One relayed frame in 16 is timed from its queueing to its write
	// (observed once written: maybe after the frame was read).
	var timed uint64
	waitFor(t, "the relay latency", func() bool {
		s = r.tr.Stats()
		timed = 0
		for _, n := range s.RelayLatency.Counts {
			timed += n
		}
		return timed >= count/16
	})
	if timed != count/16 || s.RelayLatency.Sum <= 0 {
		t.Errorf("relay latency: %d frames timed, %v in all; want %d", timed, s.RelayLatency.Sum, count/16)
	}
}

// TestRelayDestinationReplaced: when the connection a stream of frames is
// relayed to is replaced by a new one under the same name, the next
// frames go to the new one, as routing sends them; none is dropped on the
// old one the relay had cached.
func TestRelayDestinationReplaced(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, Logger: testLogger()})
	const name = "10.0.0.1:4000"
	r.target = routing.Route{routing.TCPAddress(name), routing.LocalAddress("r")}
	add := func() net.Conn {
		hub, peer := net.Pipe()
		t.Cleanup(func() { peer.Close() })
		if _, err := r.tr.AddConn(hub, name); err != nil {
			t.Fatal(err)
		}
		return peer
	}
	first := add()
	send := r.dial(t)
	send.Write(seqFrame(t, 0, 0, 100))
	if id, seq := checkSeq(t, readOne(t, first)); id != 0 || seq != 0 {
		t.Fatalf("got %d/%d, want 0/0", id, seq)
	}
	second := add() // replaces first, which closes
	var burst []byte
	for seq := 1; seq <= 5; seq++ {
		burst = append(burst, seqFrame(t, 0, seq, 100)...)
	}
	send.Write(burst)
	for want := 1; want <= 5; want++ {
		if id, seq := checkSeq(t, readOne(t, second)); id != 0 || seq != want {
			t.Fatalf("the new connection got %d/%d, want 0/%d", id, seq, want)
		}
	}
	if s := r.tr.Stats(); s.Unroutable != 0 {
		t.Errorf("%d messages unroutable", s.Unroutable)
	}
}

// TestRelayShutdownWritesBacklog: a graceful shutdown writes every frame
// relayed to a destination that was not reading (a backlog queued as
// frames, and the sender's reader's last stage) before it closes.
func TestRelayShutdownWritesBacklog(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{CutThrough: true, QueueFullWait: time.Minute, Logger: testLogger()})
	recv := r.dialTarget(t)
	send := r.dial(t)
	const count = 20000
	var stream []byte
	for seq := range count {
		stream = append(stream, seqFrame(t, 0, seq, 8+seq%300)...)
	}
	go send.Write(stream)
	// Part of the stream is read by the hub (a backlog behind the
	// destination that does not read, unless the kernel's buffers take
	// it all) before it shuts down.
	waitFor(t, "a backlog", func() bool { s := r.tr.Stats(); return s.Queued > 0 || s.FramesIn == count })
	done := make(chan error, 1)
	go func() { done <- r.tr.Shutdown(context.Background()) }()
	recv.SetReadDeadline(time.Now().Add(30 * time.Second))
	seq := 0
	for ; ; seq++ {
		var hdr [2]byte
		if _, err := io.ReadFull(recv, hdr[:]); err != nil {
			break
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(recv, body); err != nil {
			t.Fatalf("frame %d cut short: %v", seq, err)
		}
		if id, s := checkSeq(t, append(hdr[:], body...)); id != 0 || s != seq {
			t.Fatalf("frame %d/%d arrived, want 0/%d", id, s, seq)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Everything the hub read from the sender was written, or counted as
	// failed: the readers drain in no set order, so the sender's may
	// route its last frames after the destination's has closed it, on the
	// usual path as on this one (each counted as the forwarder's error).
	s, ns := r.tr.Stats(), r.node.Stats()
	if uint64(seq)+ns.WorkerErrors != s.FramesIn || s.QueueFull != 0 {
		t.Fatalf("%d frames written, %d failed, %d read from the sender; %d dropped on a full queue", seq, ns.WorkerErrors, s.FramesIn, s.QueueFull)
	}
	t.Logf("%d of %d frames read before the shutdown", seq, count)
}
