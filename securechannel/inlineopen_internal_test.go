package securechannel

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

type callerKey struct{}

// TestSmallDataDecryptedInline: a data message of at most inlineOpenMax
// bytes that finds nothing queued for decryptLoop is decrypted and
// delivered in the goroutine that delivered it (its context reaches the
// destination: no hand-off on the way to a portal's first bytes); a larger
// one goes to decryptLoop, and a small one behind it waits its turn, in
// order.
func TestSmallDataDecryptedInline(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	var mu sync.Mutex
	var got [][]byte
	var inline []bool
	done := make(chan struct{}, 16)
	dest := node.HandlerFunc(func(ctx context.Context, _ node.Sender, m *node.Message) error {
		mu.Lock()
		got = append(got, bytes.Clone(m.Payload()))
		inline = append(inline, ctx.Value(callerKey{}) != nil)
		mu.Unlock()
		done <- struct{}{}
		return nil
	})
	if _, err := r.n.StartWorkerConfig(ctx, dest, node.WorkerConfig{Addresses: []string{"dest"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	seal := func(n uint16, payload []byte) []byte {
		inner := routing.TransportMessage{Onward: routing.Route{routing.LocalAddress("dest")}, Return: routing.Route{routing.LocalAddress("app")}, Payload: payload}
		b, err := inner.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return appendSealed(nil, r.ini.send, n, b)
	}
	marked := context.WithValue(ctx, callerKey{}, true)
	send := func(n uint16, payload []byte) {
		t.Helper()
		if err := r.n.Route(marked, routing.TransportMessage{Onward: routing.Route{r.res.ch.remote}, Return: routing.Route{r.ini.ch.remote}, Payload: seal(n, payload)}); err != nil {
			t.Fatal(err)
		}
	}
	small := []byte("first bytes")
	large := bytes.Repeat([]byte("x"), inlineOpenMax+1)
	send(0, small)
	select {
	case <-done:
	default:
		t.Fatal("a small message was not delivered before Route returned")
	}
	send(1, large)
	send(2, small)
	<-done
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || !bytes.Equal(got[0], small) || !bytes.Equal(got[1], large) || !bytes.Equal(got[2], small) {
		t.Fatalf("delivered %d messages, out of order or altered", len(got))
	}
	if !inline[0] || inline[1] {
		t.Errorf("decrypted in the delivering goroutine: small %v (want true), large %v (want false)", inline[0], inline[1])
	}
}
