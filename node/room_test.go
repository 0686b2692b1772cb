package node_test

import (
	"context"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// TestPayloadRoom: a message routed with a context marked by
// node.WithPayloadRoom reaches the worker it is routed to (with a mailbox
// or inline) with Message.PayloadRoom giving the memory around its
// payload; what that worker passes on does not, nor a message routed with
// a context derived from the marked one, nor one whose payload does not
// lie where the mark says.
func TestPayloadRoom(t *testing.T) {
	ctx := t.Context()
	n := node.New(node.Config{})
	defer n.Close()
	mb, err := n.OpenMailbox("mb")
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		buf []byte
		off int
		ok  bool
	}
	inline := make(chan seen, 1)
	relay := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		buf, off, ok := m.PayloadRoom()
		inline <- seen{buf, off, ok}
		if len(m.Onward()) > 1 {
			tm := m.Transport()
			tm.Onward = tm.Onward[1:]
			return s.Forward(ctx, tm)
		}
		return nil
	})
	if _, err := n.StartWorkerConfig(ctx, relay, node.WorkerConfig{Addresses: []string{"relay"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100, 120)
	p := buf[40:60]
	route := func(ctx context.Context, onward ...string) {
		t.Helper()
		var r routing.Route
		for _, a := range onward {
			r = append(r, routing.LocalAddress(a))
		}
		if err := n.Route(ctx, routing.TransportMessage{Onward: r, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, s seen, want bool) {
		t.Helper()
		if s.ok != want {
			t.Fatalf("%s: PayloadRoom ok %v, want %v", what, s.ok, want)
		}
		if want && (s.off != 40 || len(s.buf) != cap(buf) || &s.buf[0] != &buf[0]) {
			t.Errorf("%s: PayloadRoom gives %d bytes with the payload at %d, want %d at 40", what, len(s.buf), s.off, cap(buf))
		}
	}
	receive := func() seen {
		t.Helper()
		m, err := mb.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		buf, off, ok := m.PayloadRoom()
		return seen{buf, off, ok}
	}

	marked := node.WithPayloadRoom(ctx, buf, 40)
	route(marked, "mb")
	check("a mailbox", receive(), true)
	route(marked, "relay")
	check("an inline worker", <-inline, true)
	route(marked, "relay", "mb")
	check("an inline worker passing it on", <-inline, true)
	check("the worker it passed it on to", receive(), false)
	route(ctx, "mb")
	check("unmarked", receive(), false)
	route(context.WithoutCancel(marked), "mb")
	check("a context derived from a marked one", receive(), false)
	route(node.WithPayloadRoom(ctx, buf, 41), "mb")
	check("the payload not where the mark says", receive(), false)
	route(node.WithPayloadRoom(ctx, buf[:50], 40), "mb")
	check("the payload beyond the memory given up", receive(), true) // within cap: allowed
	route(node.WithPayloadRoom(ctx, buf[:30:30], 40), "mb")
	check("the payload beyond the capacity given up", receive(), false)
	route(node.WithPayloadRoom(ctx, buf, -1), "mb")
	check("a negative offset", receive(), false)
}
