package node_test

import (
	"context"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

type markKey struct{}

// TestExclusivePayloadFirstInlineWorker: a message routed with a context
// marked by WithExclusivePayloads reaches the inline worker it is routed to
// with Message.ExclusivePayload set; what that worker passes on with the
// context it was given is not marked, nor a message routed with a context
// derived from a marked one, or with an unmarked one, nor one for a worker
// with a mailbox.
func TestExclusivePayloadFirstInlineWorker(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	ctx := t.Context()
	got := make(map[string]bool)
	inline := func(name, next string) {
		w := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
			got[name] = m.ExclusivePayload()
			if next == "" {
				return nil
			}
			tm := m.Transport()
			tm.Onward = routing.Route{routing.LocalAddress(next)}
			return s.Forward(ctx, tm)
		})
		if _, err := n.StartWorkerConfig(ctx, w, node.WorkerConfig{Addresses: []string{name}, Inline: true}); err != nil {
			t.Fatal(err)
		}
	}
	inline("first", "second")
	inline("second", "")
	mb, err := n.OpenMailbox("mailbox")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	route := func(ctx context.Context, to string) {
		t.Helper()
		clear(got)
		if err := n.Route(ctx, routing.TransportMessage{Onward: routing.Route{routing.LocalAddress(to)}, Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
	}
	marked := node.WithExclusivePayloads(ctx)
	route(marked, "first")
	if !got["first"] || got["second"] {
		t.Errorf("marked: first %v, second (passed on) %v; want true, false", got["first"], got["second"])
	}
	route(context.WithValue(marked, markKey{}, 1), "first")
	if got["first"] {
		t.Errorf("a context derived from a marked one: ExclusivePayload true")
	}
	route(ctx, "first")
	if got["first"] {
		t.Errorf("unmarked: ExclusivePayload true")
	}
	route(marked, "mailbox")
	m, err := mb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.ExclusivePayload() {
		t.Errorf("a worker with a mailbox: ExclusivePayload true")
	}
}
