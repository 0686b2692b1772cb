package securechannel

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// TestInlineAndQueuedKeepOrder: data messages of mixed sizes, delivered
// one after another as a transport's reader delivers them, reach their
// destination in the order they came (kept from the review of an inline
// opening of small messages, since removed: a guard for any such change).
func TestInlineAndQueuedKeepOrder(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	const n = 4000
	rng := rand.New(rand.NewPCG(1, 2))
	sealed := make([][]byte, n)
	for i := range sealed {
		size := 8
		if rng.IntN(4) == 0 {
			size = 4097 + rng.IntN(2000) // larger than a small message
		}
		p := make([]byte, size)
		binary.BigEndian.PutUint32(p, uint32(i))
		sealed[i] = r.seal(t, uint16(i), p)
	}
	errc := make(chan error, 1)
	go func() {
		marked := node.WithExclusivePayloads(ctx)
		for i := range sealed {
			if err := r.n.Route(marked, routing.TransportMessage{Onward: routing.Route{r.res.ch.remote}, Return: routing.Route{routing.TCPAddress("127.0.0.1:4000"), r.ini.ch.remote}, Payload: sealed[i]}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		m, err := r.sink.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint32(m.Payload()); got != uint32(i) {
			t.Fatalf("message %d delivered in place of %d", got, i)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestInlineReentry: a destination that, handling a message, routes the channel's next data message to the
// same address_remote before it returns (an inline worker on the way back
// into the channel) neither deadlocks nor reorders: the message it routed
// comes after its own.
func TestInlineReentry(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	const n = 600 // more than decryptQueue
	sealed := make([][]byte, n)
	for i := range sealed {
		inner := routing.TransportMessage{Onward: routing.Route{routing.LocalAddress("bounce")}, Return: routing.Route{routing.LocalAddress("app")}, Payload: binary.BigEndian.AppendUint32(nil, uint32(i))}
		b, err := inner.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		sealed[i] = appendSealed(nil, r.ini.send, uint16(i), b)
	}
	got := make(chan uint32, n)
	bounce := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		i := binary.BigEndian.Uint32(m.Payload())
		got <- i
		if i+1 < n {
			return s.Send(ctx, routing.Route{r.res.ch.remote}, node.Raw(bytes.Clone(sealed[i+1])))
		}
		return nil
	})
	if _, err := r.n.StartWorkerConfig(ctx, bounce, node.WorkerConfig{Addresses: []string{"bounce"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.n.Route(ctx, routing.TransportMessage{Onward: routing.Route{r.res.ch.remote}, Return: routing.Route{r.ini.ch.remote}, Payload: sealed[0]}); err != nil {
		t.Fatal(err)
	}
	for want := range uint32(n) {
		select {
		case i := <-got:
			if i != want {
				t.Fatalf("message %d delivered in place of %d", i, want)
			}
		case <-ctx.Done():
			t.Fatalf("stuck after %d messages", want)
		}
	}
}
