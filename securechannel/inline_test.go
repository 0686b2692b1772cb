package securechannel_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

// TestConcurrentSenders: channel ends are inline workers, so several
// goroutines encrypt through one channel at once. Every message arrives,
// each sender's in the order it sent them, none is taken for a replay (the
// counters are unique and leave in order), and the counters agree.
func TestConcurrentSenders(t *testing.T) {
	const senders, each = 8, 200
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	sink, err := n.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		mb, err := n.OpenMailbox("")
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		wg.Go(func() {
			for i := range each {
				p := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(s)), uint32(i))
				if err := mb.Send(ctx, routing.Route{ch.Address(), sink.Address()}, node.Raw(p)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	next := make([]uint32, senders)
	for range senders * each {
		m, err := sink.Receive(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", next, err)
		}
		p := m.Payload()
		if len(p) != 8 {
			t.Fatalf("payload %x", p)
		}
		s, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		if s >= senders || i != next[s] {
			t.Fatalf("sender %d's message %d arrived, want its message %d", s, i, next[s])
		}
		next[s]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, ok := l.Channel(responderLocal(t, n, ch, sink))
	if !ok {
		t.Fatal("no responder")
	}
	// The initiator counts a message once its send has returned, which may
	// be after the message arrived.
	eventually(t, "the last send to be counted", func() bool { return ch.Stats().Sent == senders*each+1 })
	if rst := res.Stats(); rst.Received != senders*each+1 || rst.Replays != 0 || rst.DecryptFailures != 0 {
		t.Errorf("responder %+v: want %d received, no drops", rst, senders*each+1)
	}
}

// responderLocal sends one more message through ch to sink and returns the
// responder's address_local, the head of its return route.
func responderLocal(t *testing.T, n *node.Node, ch *securechannel.Channel, sink *node.Mailbox) routing.Address {
	t.Helper()
	if err := n.Send(t.Context(), routing.Route{ch.Address(), sink.Address()}, node.Raw("last")); err != nil {
		t.Fatal(err)
	}
	m, err := sink.Receive(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m.Return()[0]
}

// TestSlowVerifyPeer: the initiator's handshake runs in a goroutine of the
// channel's own, not in the one that delivers M2 (a transport's reader,
// here a relay worker): while VerifyPeer has not returned, the relay still
// carries other traffic, and the handshake completes once it returns.
func TestSlowVerifyPeer(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	tp := startTap(t, n, "tap")
	verifying, release := make(chan struct{}), make(chan struct{})
	cfg := securechannel.Config{VerifyPeer: func(securechannel.Identity) error {
		close(verifying)
		<-release
		return nil
	}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		ch  *securechannel.Channel
		err error
	}
	done := make(chan result, 1)
	go func() {
		ch, err := securechannel.Create(ctx, n, routing.Route{tp.addr, l.Address()}, cfg)
		done <- result{ch, err}
	}()
	select {
	case <-verifying:
	case <-ctx.Done():
		t.Fatal("VerifyPeer was not called")
	}
	// M2 came through the tap, whose goroutine must be free again.
	if err := n.Send(ctx, routing.Route{tp.addr, echoRoute}, "through the tap"); err != nil {
		t.Fatal(err)
	}
	if got, _ := receive(t, ctx, n); got != "through the tap" {
		t.Fatalf("echo %q", got)
	}
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.ch.Close()
	if got, _ := roundTrip(t, n, r.ch, "hello"); got != "hello" {
		t.Errorf("echo %q", got)
	}
}

// TestMixedSizesInOrder: a sequence of small and large data messages, one
// after another from one sender, arrives whole and in order through the
// channel's hand-offs (the encrypting worker, the decrypting goroutine).
func TestMixedSizesInOrder(t *testing.T) {
	const count = 400
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	sink, err := n.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	size := func(i int) int {
		if i%3 == 0 || i%7 == 0 {
			return 8<<10 + i
		}
		return 4 + i%50
	}
	errc := make(chan error, 1)
	go func() {
		for i := range count {
			p := make([]byte, size(i))
			binary.BigEndian.PutUint32(p, uint32(i))
			if err := n.Send(ctx, routing.Route{ch.Address(), sink.Address()}, node.Raw(p)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range count {
		m, err := sink.Receive(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		p := m.Payload()
		if len(p) < 4 || binary.BigEndian.Uint32(p) != uint32(i) || len(p) != size(i) {
			t.Fatalf("message %d: got %d bytes starting %x, want message %d of %d bytes", i, len(p), p[:min(len(p), 4)], i, size(i))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
