package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of cut-through (Config.CutThrough): large frames relayed by a
// forwarder from one connection to another with their payloads spliced.

// cutFrames returns a stream of frames to the relay's forwarder: payloads
// from 1 byte to the largest that fits, each filled with its index, with
// routes of several lengths, and how many of them the relay relays: a
// frame of the largest size (i%9 == 6) is too large to relay once the
// relay has put the sender's connection on its return route.
func cutFrames(t testing.TB, count int) ([]byte, int) {
	t.Helper()
	sizes := []int{60000, 100, 16 << 10, 65000, 1, 30000, 65535, 5000, 20000}
	var out []byte
	relayed := 0
	for i := range count {
		if i%9 != 6 {
			relayed++
		}
		size := sizes[i%len(sizes)]
		p := bytes.Repeat([]byte{byte(i)}, size)
		ret := routing.Route{routing.LocalAddress(fmt.Sprintf("s%07d", i))}
		if i%3 == 1 {
			ret = append(ret, routing.TCPAddress("10.0.0.1:4000"))
		}
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd"), routing.LocalAddress("ignored")}, Return: ret, Payload: p}
		if m.EncodedLen() > tcp.MaxFrameSize {
			m.Payload = p[:size-(m.EncodedLen()-tcp.MaxFrameSize)]
		}
		f, err := tcp.AppendFrame(nil, &m, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f...)
	}
	return out, relayed
}

// readTranscript reads count frames from nc and returns their bytes.
func readTranscript(t testing.TB, nc net.Conn, count int) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var out []byte
	for i := range count {
		var hdr [2]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(nc, body); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		out = append(append(out, hdr[:]...), body...)
	}
	return out
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// relayTranscript sends frames through a relay configured by cfg and
// returns what its target received, and the relay's stats.
func relayTranscript(t *testing.T, cfg tcp.Config, frames []byte, count int) ([]byte, tcp.Stats) {
	t.Helper()
	cfg.Logger = testLogger()
	r := newBenchRelay(t, cfg)
	recv := r.dialTarget(t)
	send := r.dial(t)
	go func() {
		// In pieces of varying sizes, so that frames are split anywhere.
		for k, i := 0, 0; k < len(frames); i++ {
			n := min(len(frames)-k, 1+(i*7919)%70000)
			if _, err := send.Write(frames[k : k+n]); err != nil {
				return
			}
			k += n
		}
	}()
	got := readTranscript(t, recv, count)
	// The sender's connection is on every return route: its port differs
	// from run to run (always 5 digits: an ephemeral port).
	got = bytes.ReplaceAll(got, []byte(send.LocalAddr().String()), []byte("127.0.0.1:00000"))
	return got, r.tr.Stats()
}

func TestCutThroughSameBytes(t *testing.T) {
	const count = 200
	frames, relayed := cutFrames(t, count)
	want, ws := relayTranscript(t, tcp.Config{ReuseBodies: true}, frames, relayed)
	got, gs := relayTranscript(t, tcp.Config{ReuseBodies: true, CutThrough: true}, frames, relayed)
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("cut-through wrote %d bytes that differ from the usual path's %d from byte %d: % x, want % x", len(got), len(want), i, got[i:min(i+40, len(got))], want[i:min(i+40, len(want))])
	}
	if runtime.GOOS == "linux" && gs.CutThrough == 0 {
		t.Error("nothing was cut through")
	}
	t.Logf("%d of %d frames cut through", gs.CutThrough, gs.FramesIn)
	if gs.TooLarge != ws.TooLarge || gs.TooLarge != uint64(count-relayed) {
		t.Errorf("frames too large: cut %d, usual %d, want %d", gs.TooLarge, ws.TooLarge, count-relayed)
	}
	if gs.FramesIn != ws.FramesIn || gs.FramesOut != ws.FramesOut || gs.BytesIn != ws.BytesIn || gs.BytesOut != ws.BytesOut {
		t.Fatalf("counters differ: cut %+v, usual %+v", gs, ws)
	}
}

// seqFrame is a frame for the relay's forwarder whose payload of size
// bytes starts with the sender's id and seq, and is filled with byte(seq).
func seqFrame(t testing.TB, id, seq, size int) []byte {
	t.Helper()
	p := bytes.Repeat([]byte{byte(seq)}, size)
	binary.BigEndian.PutUint32(p, uint32(id))
	binary.BigEndian.PutUint32(p[4:], uint32(seq))
	return fwdFrame(t, p)
}

// checkSeq decodes a relayed frame made by seqFrame and returns its sender
// and seq, failing the test if its payload is not intact.
func checkSeq(t testing.TB, frame []byte) (id, seq int) {
	t.Helper()
	m, _, err := routing.DecodeMessage(frame[2:])
	if err != nil {
		t.Fatalf("relayed frame does not decode: %v", err)
	}
	p := m.Payload
	if len(p) < 8 {
		t.Fatalf("relayed payload of %d bytes", len(p))
	}
	id, seq = int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
	for i, b := range p[8:] {
		if b != byte(seq) {
			t.Fatalf("frame %d/%d: payload byte %d is %#x, want %#x", id, seq, 8+i, b, byte(seq))
		}
	}
	return id, seq
}

// readOne reads one frame (length prefix included) from nc.
func readOne(t testing.TB, nc net.Conn) []byte {
	t.Helper()
	return readTranscript(t, nc, 1)
}

// waitFor polls cond until it holds, failing after a long while.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var cutSizes = []int{60000, 100, 20000, 8, 65000 - 100, 16 << 10, 3000}

// TestCutThroughOrderManySenders: several senders' large and small frames
// to one destination arrive complete, each sender's in order.
func TestCutThroughOrderManySenders(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	const senders, each = 3, 150
	for id := range senders {
		nc := r.dial(t)
		go func() {
			var stream []byte
			for seq := range each {
				stream = append(stream, seqFrame(t, id, seq, cutSizes[(seq+id)%len(cutSizes)])...)
			}
			nc.Write(stream)
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		id, seq := checkSeq(t, readOne(t, recv))
		if id >= senders || seq != next[id] {
			t.Fatalf("sender %d: frame %d arrived, want %d", id, seq, next[id])
		}
		next[id]++
	}
	t.Logf("%d of %d frames cut through", r.tr.Stats().CutThrough, senders*each)
}

// TestCutThroughSourceStalls: a sender that stops mid-frame, after its
// frame's head (and a cut-through's pipe) was taken, delays nobody else's
// frames to the same destination, and is closed by the frame timeout; one
// that dies mid-frame is closed at once. The destination sees only whole
// frames.
func TestCutThroughSourceStalls(t *testing.T) {
	for _, dies := range []bool{false, true} {
		t.Run(map[bool]string{false: "stalls", true: "dies"}[dies], func(t *testing.T) {
			r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, FrameTimeout: 500 * time.Millisecond})
			recv := r.dialTarget(t)
			good := r.dial(t)
			bad := r.dial(t)
			f := seqFrame(t, 9, 9, 60000)
			if _, err := bad.Write(f[:20000]); err != nil {
				t.Fatal(err)
			}
			if runtime.GOOS == "linux" {
				// The bad sender's reader waits for the rest with a pipe.
				waitFor(t, "the stalled frame to take a pipe", func() bool { return tcp.PipesInUse() == 1 })
			}
			if _, err := bad.Write(f[20000:40000]); err != nil {
				t.Fatal(err)
			}
			for seq := range 5 {
				if _, err := good.Write(seqFrame(t, 1, seq, 60000)); err != nil {
					t.Fatal(err)
				}
				if id, got := checkSeq(t, readOne(t, recv)); id != 1 || got != seq {
					t.Fatalf("got frame %d/%d, want 1/%d", id, got, seq)
				}
			}
			if dies {
				bad.Close()
			}
			// The relay closes the bad sender's connection.
			waitFor(t, "the bad connection to close", func() bool { return r.tr.Stats().Conns == 2 })
			if !dies {
				if n := r.tr.Stats().FrameTimeouts; n != 1 {
					t.Errorf("FrameTimeouts = %d, want 1", n)
				}
			}
			waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
			if _, err := good.Write(seqFrame(t, 1, 5, 60000)); err != nil {
				t.Fatal(err)
			}
			if id, got := checkSeq(t, readOne(t, recv)); id != 1 || got != 5 {
				t.Fatalf("got frame %d/%d, want 1/5", id, got)
			}
		})
	}
}

// echoFrame is a frame for echo_service.
func echoFrame(t testing.TB, payload []byte) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("echo_service")},
		Return: routing.Route{routing.LocalAddress("me")}, Payload: payload}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCutThroughSlowDestination: a destination that does not read fills
// its socket and its queue; its sender is not held (with QueueFullWait
// negative nothing waits: echoes to the sender keep coming back), what is
// dropped is counted, and what the destination then reads is whole frames
// in order.
func TestCutThroughSlowDestination(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, QueueFullWait: -1, SendQueueBytes: 256 << 10})
	recv := r.dialTarget(t)
	src := r.dial(t)
	const frames, echoEvery = 400, 10
	echoes := make(chan error, 1)
	go func() {
		for range frames / echoEvery {
			var hdr [2]byte
			if _, err := io.ReadFull(src, hdr[:]); err != nil {
				echoes <- err
				return
			}
			if _, err := io.ReadFull(src, make([]byte, binary.BigEndian.Uint16(hdr[:]))); err != nil {
				echoes <- err
				return
			}
		}
		echoes <- nil
	}()
	var stream []byte
	for seq := range frames {
		stream = append(stream, seqFrame(t, 0, seq, cutSizes[seq%len(cutSizes)])...)
		if seq%echoEvery == echoEvery-1 {
			stream = append(stream, echoFrame(t, []byte("ping"))...)
		}
	}
	go src.Write(stream)
	// Every echo comes back while the destination reads nothing.
	if err := <-echoes; err != nil {
		t.Fatal(err)
	}
	st := r.tr.Stats()
	if st.FramesIn != frames+frames/echoEvery {
		t.Fatalf("FramesIn = %d, want %d", st.FramesIn, frames+frames/echoEvery)
	}
	if st.QueueFull == 0 {
		t.Fatal("nothing was dropped: the destination's socket and queue never filled")
	}
	want := frames - int(st.QueueFull)
	last := -1
	for range want {
		_, seq := checkSeq(t, readOne(t, recv))
		if seq <= last {
			t.Fatalf("frame %d after %d", seq, last)
		}
		last = seq
	}
	t.Logf("%d frames cut through, %d dropped", st.CutThrough, st.QueueFull)
	waitFor(t, "the pipes to be given back", func() bool { return tcp.PipesInUse() == 0 })
}

// TestCutThroughDestinationCloses: a destination that closes while large
// frames are relayed to it costs its sender nothing: the sender's
// connection keeps working.
func TestCutThroughDestinationCloses(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true})
	recv := r.dialTarget(t)
	src := r.dial(t)
	var stream []byte
	for seq := range 100 {
		stream = append(stream, seqFrame(t, 0, seq, 60000)...)
	}
	go src.Write(append(stream, echoFrame(t, []byte("ping"))...))
	for seq := range 3 {
		if _, got := checkSeq(t, readOne(t, recv)); got != seq {
			t.Fatalf("frame %d, want %d", got, seq)
		}
	}
	recv.(*net.TCPConn).SetLinger(0) // a reset: writes to it fail at once
	recv.Close()
	m, _, err := routing.DecodeMessage(readOne(t, src)[2:])
	if err != nil || string(m.Payload) != "ping" {
		t.Fatalf("echo after the destination closed: %q, %v", m.Payload, err)
	}
	waitFor(t, "the pipes to be given back", func() bool { return tcp.PipesInUse() == 0 })
}

// TestCutThroughGarbageHead: a large frame whose head does not decode is
// not cut through: the connection is closed as malformed, as without
// cut-through, and the destination gets nothing.
func TestCutThroughGarbageHead(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true})
	recv := r.dialTarget(t)
	src := r.dial(t)
	f := seqFrame(t, 0, 0, 60000)
	f[2+1+1] = 200 // the onward address's type
	if _, err := src.Write(f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection to close", func() bool { return r.tr.Stats().Malformed == 1 })
	if n := r.tr.Stats().CutThrough; n != 0 {
		t.Fatalf("CutThrough = %d", n)
	}
	good := r.dial(t)
	if _, err := good.Write(seqFrame(t, 1, 1, 60000)); err != nil {
		t.Fatal(err)
	}
	if id, seq := checkSeq(t, readOne(t, recv)); id != 1 || seq != 1 {
		t.Fatalf("got %d/%d, want 1/1", id, seq)
	}
}

// TestCutThroughShutdownAndFDs: a graceful shutdown while a frame waits
// mid-splice ends promptly, and leaves no descriptor behind but the pool's
// idle pipes.
func TestCutThroughShutdownAndFDs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	func() {
		r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true})
		recv := r.dialTarget(t)
		src := r.dial(t)
		var stream []byte
		for seq := range 50 {
			stream = append(stream, seqFrame(t, 0, seq, 60000)...)
		}
		if _, err := src.Write(stream); err != nil {
			t.Fatal(err)
		}
		for seq := range 50 {
			if _, got := checkSeq(t, readOne(t, recv)); got != seq {
				t.Fatalf("frame %d, want %d", got, seq)
			}
		}
		stall := r.dial(t)
		if _, err := stall.Write(seqFrame(t, 1, 1, 60000)[:30000]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the stalled frame to take a pipe", func() bool { return tcp.PipesInUse() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.tr.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		recv.Close()
		src.Close()
		stall.Close()
	}()
	if n := tcp.PipesInUse(); n != 0 {
		t.Fatalf("%d pipes still taken", n)
	}
	// The relay's listener and connections are closed; the pool may keep
	// its idle pipes.
	if after := fds(); after > before+2*tcp.MaxIdlePipes {
		t.Fatalf("%d descriptors open, %d before", after, before)
	}
}

// whoami starts a worker at "whoami" on r's node that reports the head of
// the return route of what it receives: a connection's alias.
func whoami(t *testing.T, r *benchRelay) func(nc net.Conn) routing.Address {
	t.Helper()
	seen := make(chan routing.Address, 1)
	w := node.HandlerFunc(func(_ context.Context, _ node.Sender, m *node.Message) error {
		seen <- m.Return()[0]
		return nil
	})
	if _, err := r.node.StartWorkerConfig(context.Background(), w, node.WorkerConfig{Addresses: []string{"whoami"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	return func(nc net.Conn) routing.Address {
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("whoami")}, Return: routing.Route{routing.LocalAddress("x")}}
		f, err := tcp.AppendFrame(nil, &m, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(f); err != nil {
			t.Fatal(err)
		}
		return <-seen
	}
}

// TestCutThroughAliasSameBytes: with connection aliases (a hub's), frames
// relayed to a connection's alias, named twice at the head of the
// forwarder's route, are cut through and written as the usual path writes
// them.
func TestCutThroughAliasSameBytes(t *testing.T) {
	const count = 200
	frames, relayed := cutFrames(t, count)
	run := func(cut bool) ([]byte, tcp.Stats) {
		r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: cut, Aliases: true, Logger: testLogger()})
		who := whoami(t, r)
		recv := r.dial(t)
		alias := who(recv)
		r.target = routing.Route{alias, alias, routing.LocalAddress("r0000000")}
		send := r.dial(t)
		salias := who(send)
		go send.Write(frames)
		got := readTranscript(t, recv, relayed)
		// The sender's alias is on every return route: random, of 16 hex
		// digits.
		got = bytes.ReplaceAll(got, []byte(salias.Value), []byte("0000000000000000"))
		return got, r.tr.Stats()
	}
	want, ws := run(false)
	got, gs := run(true)
	if !bytes.Equal(got, want) {
		t.Fatalf("cut-through wrote %d bytes that differ from the usual path's %d", len(got), len(want))
	}
	if runtime.GOOS == "linux" && gs.CutThrough == 0 {
		t.Error("nothing was cut through")
	}
	if gs.FramesOut != ws.FramesOut || gs.BytesOut != ws.BytesOut || gs.TooLarge != ws.TooLarge {
		t.Fatalf("counters differ: cut %+v, usual %+v", gs, ws)
	}
}
