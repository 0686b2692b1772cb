package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Tests of the sends of application goroutines (not a transport's reader):
// a sender that finds the connection idle writes its message itself, with
// a non-blocking write; a backlog, a full socket or contention go to a
// writer goroutine as before.

// appClient is a node whose transport is connected to a raw peer.
type appClient struct {
	node *node.Node
	tr   *tcp.Transport
	addr routing.Address // the connection to the peer
	peer net.Conn        // the peer's end
}

func newAppClient(t testing.TB, cfg tcp.Config) *appClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(); n.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	addr, err := tr.Connect(t.Context(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	return &appClient{node: n, tr: tr, addr: addr, peer: peer}
}

// send sends payload to the peer's worker "x" from the caller's goroutine.
func (a *appClient) send(ctx context.Context, payload []byte) error {
	return a.node.Route(ctx, routing.TransportMessage{Version: 1,
		Onward: routing.Route{a.addr, routing.LocalAddress("x")},
		Return: routing.Route{routing.LocalAddress("app")}, Payload: payload})
}

// TestAppSendOrderPerSender: application goroutines racing to send on one
// connection (each finding it idle or busy in turn) get every message to
// the peer, each sender's in order; the counters are never behind what the
// peer has read.
func TestAppSendOrderPerSender(t *testing.T) {
	a := newAppClient(t, tcp.Config{})
	const senders, each = 4, 2000
	errs := make(chan error, senders)
	for s := range senders {
		go func() {
			for i := range each {
				p := make([]byte, 8+s*700) // some large enough to be written in place
				binary.BigEndian.PutUint32(p, uint32(s))
				binary.BigEndian.PutUint32(p[4:], uint32(i))
				if err := a.send(t.Context(), p); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := make([]uint32, senders)
	for k, p := range readPayloads(t, a.peer, senders*each) {
		s, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if i != next[s] {
			t.Fatalf("sender %d: message %d after %d", s, i, next[s])
		}
		next[s]++
		if out := a.tr.Stats().FramesOut; out < uint64(k+1) {
			t.Fatalf("FramesOut %d after the peer read %d", out, k+1)
		}
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppSendSlowPeer: a peer that does not read fills its socket and then
// the queue; the sender is never held by the socket (with QueueFullWait
// < 0 it is told the queue is full), and everything accepted arrives
// intact and in order once the peer reads.
func TestAppSendSlowPeer(t *testing.T) {
	a := newAppClient(t, tcp.Config{QueueFullWait: -1, SendQueueSize: 64})
	sent := 0
	for ; ; sent++ {
		p := bytes.Repeat([]byte{byte(sent)}, 4000)
		binary.BigEndian.PutUint32(p, uint32(sent))
		err := a.send(t.Context(), p)
		if errors.Is(err, tcp.ErrQueueFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if sent > 100000 {
			t.Fatal("the queue never filled")
		}
	}
	for i, p := range readPayloads(t, a.peer, sent) {
		if binary.BigEndian.Uint32(p) != uint32(i) || len(p) != 4000 || p[len(p)-1] != byte(i) {
			t.Fatalf("message %d: got %d bytes, first %d", i, len(p), binary.BigEndian.Uint32(p))
		}
	}
	// The connection still works, from an idle queue again.
	if err := a.send(t.Context(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if p := readPayloads(t, a.peer, 1)[0]; string(p) != "after" {
		t.Fatalf("got %q", p)
	}
}

// TestAppSendAfterWriteTimeout: a blocking write by a writer goroutine
// leaves a write deadline on the socket; a later non-blocking write from a
// sender, once that deadline has passed, must not fail the connection.
func TestAppSendAfterWriteTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	a := newAppClient(t, tcp.Config{WriteTimeout: timeout})
	// A backlog larger than the socket takes: a writer goroutine writes
	// its rest, blocking, with a deadline, while the peer reads.
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := a.send(t.Context(), bytes.Repeat([]byte{byte(i)}, 30000)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	readPayloads(t, a.peer, n)
	wg.Wait()
	time.Sleep(3 * timeout) // the deadline itself is what is tested
	for i := range 3 {
		if err := a.send(t.Context(), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if p := readPayloads(t, a.peer, 1)[0]; p[0] != byte(i) {
			t.Fatalf("got %v", p)
		}
	}
	if got := len(a.tr.Connections()); got != 1 {
		t.Fatalf("%d connections, want 1", got)
	}
}

// appEcho is a client node connected to a bench relay's echo service.
func appEcho(b *testing.B) (*appClient, routing.Route) {
	r := newBenchRelay(b, tcp.Config{})
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.Close(); n.Close() })
	addr, err := tr.Connect(b.Context(), r.addr)
	if err != nil {
		b.Fatal(err)
	}
	return &appClient{node: n, tr: tr, addr: addr}, routing.Route{addr, routing.LocalAddress("echo_service")}
}

// BenchmarkAppEchoOneInFlight: an application goroutine of a client node
// sends to the echo service over TCP and waits for the reply; ns/op is
// the round trip, the send written from the sender's goroutine when the
// connection is idle.
func BenchmarkAppEchoOneInFlight(b *testing.B) {
	a, route := appEcho(b)
	ctx := b.Context()
	m := routing.TransportMessage{Version: 1, Onward: route, Return: routing.Route{routing.LocalAddress("app")}, Payload: make([]byte, 100)}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.node.Route(ctx, m); err != nil {
			b.Fatal(err)
		}
		if _, err := a.node.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppEchoPipelined: as BenchmarkAppEchoOneInFlight with 32
// messages in flight (sent, then their replies received).
func BenchmarkAppEchoPipelined(b *testing.B) {
	a, route := appEcho(b)
	ctx := b.Context()
	m := routing.TransportMessage{Version: 1, Onward: route, Return: routing.Route{routing.LocalAddress("app")}, Payload: make([]byte, 100)}
	const window = 32
	b.ReportAllocs()
	for left := b.N; left > 0; {
		k := min(left, window)
		for range k {
			if err := a.node.Route(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		for range k {
			if _, err := a.node.Receive(ctx); err != nil {
				b.Fatal(err)
			}
		}
		left -= k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
