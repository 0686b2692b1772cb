package tcp

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// pinRewriter forwards to a fixed route, as a hub's forwarder does.
type pinRewriter struct{ route routing.Route }

func (f pinRewriter) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	tm := m.Transport()
	tm.Onward = f.route
	return s.Forward(ctx, tm)
}
func (f pinRewriter) RewriteOnward(routing.Route) (routing.Route, bool) { return f.route, true }
func (f pinRewriter) Relayed()                                          {}

// relayHub is a transport relaying through the forwarder "fwd" to a
// destination connection, whose conn it returns with its peer's socket.
func relayHub(t *testing.T, cfg Config) (*Transport, *conn, net.Conn, string) {
	t.Helper()
	n := node.New(node.Config{NoApp: true})
	tr, err := New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tr.Serve(ln)
	t.Cleanup(func() { tr.Close(); n.Close() })
	recv, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	dstAddr := routing.TCPAddress(recv.LocalAddr().String())
	var dst *conn
	deadline := time.Now().Add(20 * time.Second)
	for dst == nil {
		if v, ok := tr.conns.Load(dstAddr); ok {
			dst = v.(*conn)
		} else if time.Now().After(deadline) {
			t.Fatal("the destination never connected")
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	fwd := pinRewriter{route: routing.Route{dstAddr, routing.LocalAddress("r")}}
	if _, err := n.StartWorkerConfig(context.Background(), fwd, node.WorkerConfig{Addresses: []string{"fwd"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	return tr, dst, recv, ln.Addr().String()
}

// holdWriting makes q look written to (by a writer that never finishes),
// so that what is queued stays queued; the returned func gives the right
// back.
func holdWriting(q *sendQueue) func() {
	q.mu.Lock()
	q.writing = true
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		q.writing = false
		q.mu.Unlock()
		signal(q.released)
	}
}

// TestRelaySlabPinning: frames relayed one per read to a destination that
// does not write (a slow peer, or an attacker's connection that never
// reads) hold no more memory than about what their sender sent: a frame
// of 40 bytes must not pin a pooled slab of 32 KiB, which SendQueueBytes
// does not see (a queue of 1024 such frames would hold 32 MiB).
func TestRelaySlabPinning(t *testing.T) {
	_, dst, _, addr := relayHub(t, Config{CutThrough: true})
	defer holdWriting(dst.queue)()
	send, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")},
		Return: routing.Route{routing.LocalAddress("s")}, Payload: []byte("0123456789")}
	frame, err := AppendFrame(nil, &m, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	const count = 64
	for i := range count {
		// One frame per read: the next is sent once this one is queued.
		if _, err := send.Write(frame); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for dst.queue.len() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("frame %d never queued", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	q := dst.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	pinned, leases := 0, map[*lease]bool{}
	for _, e := range q.msgs {
		if e.frame == nil {
			t.Fatal("a frame was not relayed by its bytes")
		}
		switch {
		case e.lease == nil:
			pinned += cap(e.frame)
		case !leases[e.lease]:
			leases[e.lease] = true
			pinned += cap(e.lease.buf)
		}
	}
	if limit := 4*q.bytes + relaySlabSize; pinned > limit {
		t.Fatalf("%d frames of %d bytes in all pin %d bytes (%d pooled slabs); want at most %d", len(q.msgs), q.bytes, pinned, len(leases), limit)
	}
}

// TestRelayFailedCounts: frames through a forwarder to a connection whose
// queue is full (and a full queue drops at once) are counted as the usual
// path counts them: a full queue each, and an error of the forwarder,
// whose HandleMessage the send's error would have reached.
func TestRelayFailedCounts(t *testing.T) {
	counts := func(cut bool) (uint64, uint64, uint64) {
		tr, dst, _, addr := relayHub(t, Config{CutThrough: cut, SendQueueSize: 4, QueueFullWait: -1})
		release := holdWriting(dst.queue)
		defer release()
		send, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer send.Close()
		m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd")},
			Return: routing.Route{routing.LocalAddress("s")}, Payload: []byte("0123456789")}
		var burst []byte
		for range 10 {
			if burst, err = AppendFrame(burst, &m, MaxFrameSize); err != nil {
				t.Fatal(err)
			}
		}
		// Then a frame to "sync": the reader routes it once it is done
		// with the burst.
		synced := make(chan struct{}, 1)
		syncw := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { synced <- struct{}{}; return nil })
		if _, err := tr.node.StartWorkerConfig(context.Background(), syncw, node.WorkerConfig{Addresses: []string{"sync"}, Inline: true}); err != nil {
			t.Fatal(err)
		}
		m.Onward = routing.Route{routing.LocalAddress("sync")}
		if burst, err = AppendFrame(burst, &m, MaxFrameSize); err != nil {
			t.Fatal(err)
		}
		send.Write(burst)
		select {
		case <-synced:
		case <-time.After(20 * time.Second):
			t.Fatal("the frames never arrived")
		}
		s := tr.Stats()
		return s.QueueFull, s.Unroutable, tr.node.Stats().WorkerErrors
	}
	wq, wu, ww := counts(false)
	gq, gu, gw := counts(true)
	if gq != wq || gu != wu || gw != ww {
		t.Fatalf("relayed: %d queue full, %d unroutable, %d worker errors; usual path: %d, %d, %d", gq, gu, gw, wq, wu, ww)
	}
	if wq != 6 {
		t.Fatalf("%d dropped on a full queue, want 6", wq)
	}
}

// TestRelayDeclinedAcrossWaits: a connection whose frames relay does not
// take (requests to a service, sent one at a time, so that the reader
// waits between them and drops its relay cache) has relay look at a few
// of its frames, not at every one: the count of declined frames that
// makes relay skip the next ones outlives the cache. A look after a wait
// decodes the frame's head, which the usual path then decodes again.
func TestRelayDeclinedAcrossWaits(t *testing.T) {
	tr, _, _, addr := relayHub(t, Config{CutThrough: true, ReuseBodies: true})
	var looks atomic.Uint32
	echo := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		if rd, ok := ctx.Value(readerKey{}).(*reader); ok {
			looks.Store(rd.relayLooks) // on the reader's goroutine
		}
		return s.Forward(ctx, routing.TransportMessage{Version: 1, Onward: m.Return(), Return: routing.Route{m.Address()}, Payload: m.Payload()})
	})
	if _, err := tr.node.StartWorkerConfig(context.Background(), echo, node.WorkerConfig{Addresses: []string{"echo"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("echo")},
		Return: routing.Route{routing.LocalAddress("c")}, Payload: []byte("0123456789")}
	frame, err := AppendFrame(nil, &m, MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	const count = 300
	reply := make([]byte, MaxFrameSize)
	nc.SetDeadline(time.Now().Add(time.Minute))
	for range count {
		// One in flight: the reader has nothing buffered once it
		// replied, and waits for the next frame.
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, reply[:FrameHeaderSize]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, reply[:binary.BigEndian.Uint16(reply)]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := looks.Load(), uint32(maxDeclined+count/(relaySkip+1)+1); got > want {
		t.Fatalf("relay looked at %d of %d frames that it declined, want at most %d", got, count, want)
	}
}
