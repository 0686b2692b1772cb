package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func echoer() node.Worker {
	return node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		return s.Send(ctx, m.Return(), node.Raw(m.Payload()))
	})
}

// hop relays to the rest of the onward route and puts itself on the return
// route, as the Rust get_started Hop does.
func hop() node.Worker {
	return node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		tm := m.Transport()
		tm.Onward = tm.Onward.Step()
		tm.Return = tm.Return.Prepend(s.Address())
		return s.Forward(ctx, tm)
	})
}

func newNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	n := node.New(cfg)
	t.Cleanup(func() { n.Close() })
	return n
}

func TestEchoThroughHops(t *testing.T) {
	for _, hops := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("hops=%d", hops), func(t *testing.T) {
			ctx := t.Context()
			n := newNode(t, node.Config{})
			if err := n.StartWorker(ctx, "echoer", echoer()); err != nil {
				t.Fatal(err)
			}
			var route routing.Route
			for i := range hops {
				name := fmt.Sprintf("h%d", i+1)
				if err := n.StartWorker(ctx, name, hop()); err != nil {
					t.Fatal(err)
				}
				route = route.Append(routing.LocalAddress(name))
			}
			route = route.Append(routing.LocalAddress("echoer"))
			if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
				t.Fatal(err)
			}
			m, err := n.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := node.Body[string](m)
			if err != nil || got != "Hello Ockam!" {
				t.Fatalf("got %q, %v", got, err)
			}
			// The reply came back through every hop: its return route
			// lists them, most recent first, then the echoer.
			want := route
			if !m.Return().Equal(want) {
				t.Fatalf("return route %v, want %v", m.Return(), want)
			}
			if m.Onward().String() != "0#app" || m.Address() != routing.LocalAddress("app") {
				t.Fatalf("delivered at %v with onward %v", m.Address(), m.Onward())
			}
		})
	}
}

func TestMessageAccessors(t *testing.T) {
	ctx := t.Context()
	n := newNode(t, node.Config{})
	got := make(chan *node.Message, 1)
	n.StartWorker(ctx, "w", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		got <- m
		return nil
	}))
	if err := n.Send(ctx, routing.MustParseRoute("w => x => y"), "hi"); err != nil {
		t.Fatal(err)
	}
	m := <-got
	if m.Onward().String() != "0#w => 0#x => 0#y" {
		t.Errorf("onward %v: local delivery must not pop", m.Onward())
	}
	if m.Return().String() != "0#app" || m.Sender() != routing.LocalAddress("app") {
		t.Errorf("return %v sender %v", m.Return(), m.Sender())
	}
	if string(m.Payload()) != "\x02hi" {
		t.Errorf("payload %q", m.Payload())
	}
}

func TestUnknownAddress(t *testing.T) {
	n := newNode(t, node.Config{})
	err := n.Send(t.Context(), routing.MustParseRoute("nobody"), "x")
	if !errors.Is(err, node.ErrUnknownAddress) {
		t.Fatalf("err = %v", err)
	}
	var re *node.RouteError
	if !errors.As(err, &re) || re.Addr != routing.LocalAddress("nobody") {
		t.Fatalf("err = %#v", err)
	}
	err = n.Send(t.Context(), routing.MustParseRoute("9#x"), "x")
	if !errors.Is(err, node.ErrNoTransport) {
		t.Fatalf("err = %v", err)
	}
	if err := n.Send(t.Context(), nil, "x"); !errors.Is(err, node.ErrEmptyRoute) {
		t.Fatalf("err = %v", err)
	}
	if s := n.Stats(); s.Unroutable != 2 {
		t.Fatalf("unroutable = %d, want 2", s.Unroutable)
	}
}

type fakeTransport struct {
	got chan routing.TransportMessage
}

func (f *fakeTransport) RouteMessage(ctx context.Context, m routing.TransportMessage) error {
	f.got <- m
	return nil
}

func TestTransportDispatch(t *testing.T) {
	n := newNode(t, node.Config{})
	ft := &fakeTransport{got: make(chan routing.TransportMessage, 1)}
	if err := n.RegisterTransport(routing.TCP, ft); err != nil {
		t.Fatal(err)
	}
	if err := n.RegisterTransport(routing.TCP, ft); !errors.Is(err, node.ErrAddressInUse) {
		t.Fatalf("double registration: %v", err)
	}
	if err := n.Send(t.Context(), routing.MustParseRoute("1#127.0.0.1:4000 => echo_service"), "x"); err != nil {
		t.Fatal(err)
	}
	m := <-ft.got
	if m.Onward.String() != "1#127.0.0.1:4000 => 0#echo_service" || m.Return.String() != "0#app" {
		t.Fatalf("transport got %v / %v: the node must hand over the full route", m.Onward, m.Return)
	}
}

func TestControlPing(t *testing.T) {
	n := newNode(t, node.Config{ControlPing: true})
	ping := routing.TransportMessage{Version: 1, Return: routing.MustParseRoute("app"), Payload: []byte{0}}
	if err := n.Route(t.Context(), ping); err != nil {
		t.Fatal(err)
	}
	m, err := n.Receive(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Payload()) != "\x01" || len(m.Return()) != 0 {
		t.Fatalf("pong = %q return %v", m.Payload(), m.Return())
	}
	// Other empty-route messages are errors.
	bad := routing.TransportMessage{Version: 1, Return: routing.MustParseRoute("app"), Payload: []byte{7}}
	if err := n.Route(t.Context(), bad); !errors.Is(err, node.ErrEmptyRoute) {
		t.Fatalf("err = %v", err)
	}
}

type hooked struct {
	started, stopped atomic.Int32
	failStart        bool
}

func (h *hooked) Initialize(ctx context.Context, s node.Sender) error {
	if h.failStart {
		return errors.New("no")
	}
	h.started.Add(1)
	return nil
}
func (h *hooked) Shutdown(ctx context.Context) error { h.stopped.Add(1); return nil }
func (h *hooked) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	return nil
}

func TestLifecycleHooks(t *testing.T) {
	ctx := t.Context()
	n := node.New(node.Config{})
	h := &hooked{}
	if err := n.StartWorker(ctx, "h", h); err != nil {
		t.Fatal(err)
	}
	if h.started.Load() != 1 {
		t.Fatal("Initialize not called before StartWorker returned")
	}
	if err := n.StartWorker(ctx, "h", echoer()); !errors.Is(err, node.ErrAddressInUse) {
		t.Fatalf("duplicate address: %v", err)
	}
	bad := &hooked{failStart: true}
	if err := n.StartWorker(ctx, "bad", bad); err == nil {
		t.Fatal("failing Initialize started the worker")
	}
	if n.HasWorker("bad") {
		t.Fatal("failed worker still registered")
	}
	if err := n.StopWorker(ctx, "h"); err != nil {
		t.Fatal(err)
	}
	if h.stopped.Load() != 1 || n.HasWorker("h") {
		t.Fatal("StopWorker did not run Shutdown or unregister")
	}
	h2 := &hooked{}
	n.StartWorker(ctx, "h2", h2)
	n.Close()
	n.Close() // idempotent
	if h2.stopped.Load() != 1 {
		t.Fatal("Close did not run Shutdown")
	}
	if err := n.StartWorker(ctx, "late", echoer()); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("start after close: %v", err)
	}
	if _, err := n.Receive(ctx); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
}

func TestRandomAddresses(t *testing.T) {
	n := newNode(t, node.Config{})
	addrs, err := n.StartWorkerConfig(t.Context(), echoer(), node.WorkerConfig{Addresses: []string{"", ""}})
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("addrs = %v", addrs)
	}
	for _, a := range addrs {
		if len(a.Value) != 32 || a.Type != routing.Local {
			t.Fatalf("address %v is not 32 hex", a)
		}
		for _, c := range a.Value {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("address %v is not lowercase hex", a)
			}
		}
	}
	if got := node.RandomAddress(4); len(got) != 8 {
		t.Fatalf("RandomAddress(4) = %q", got)
	}
}

func TestReceiveContext(t *testing.T) {
	n := newNode(t, node.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := n.Receive(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestBoundedMailbox: a worker that does not keep up makes senders wait,
// and a sender whose context ends gets ErrMailboxFull; nothing is lost.
func TestBoundedMailbox(t *testing.T) {
	ctx := t.Context()
	n := newNode(t, node.Config{})
	release := make(chan struct{})
	handled := make(chan struct{}, 16)
	_, err := n.StartWorkerConfig(ctx, node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		<-release
		handled <- struct{}{}
		return nil
	}), node.WorkerConfig{Addresses: []string{"slow"}, MailboxSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	route := routing.MustParseRoute("slow")
	// One in the handler, two in the mailbox.
	sent := 0
	for sent < 3 {
		if err := n.Send(ctx, route, "x"); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	// The mailbox is now full (the handler holds at most one): a sender
	// with a short deadline sees ErrMailboxFull, unless the handler has
	// not yet taken the first message, so allow one more.
	full := false
	for range 2 {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := n.Send(sctx, route, "x")
		cancel()
		if errors.Is(err, node.ErrMailboxFull) {
			full = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if !full {
		t.Fatal("mailbox bound not enforced")
	}
	close(release)
	// Everything accepted is handled.
	for range sent {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

func TestConcurrentSenders(t *testing.T) {
	ctx := t.Context()
	n := newNode(t, node.Config{})
	n.StartWorker(ctx, "echoer", echoer())
	const senders, each = 8, 200
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			mb, err := n.OpenMailbox("")
			if err != nil {
				t.Error(err)
				return
			}
			defer mb.Close()
			for j := range each {
				want := fmt.Sprintf("%d-%d", i, j)
				if err := mb.Send(ctx, routing.MustParseRoute("echoer"), want); err != nil {
					t.Error(err)
					return
				}
				m, err := mb.Receive(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if got, _ := node.Body[string](m); got != want {
					t.Errorf("got %q want %q", got, want)
				}
			}
		})
	}
	wg.Wait()
}

func TestReceiveBody(t *testing.T) {
	ctx := t.Context()
	n := newNode(t, node.Config{})
	n.StartWorker(ctx, "echoer", echoer())
	n.Send(ctx, routing.MustParseRoute("echoer"), "typed")
	got, m, err := node.ReceiveBody[string](ctx, n)
	if err != nil || got != "typed" || m.Sender() != routing.LocalAddress("echoer") {
		t.Fatalf("got %q from %v, %v", got, m, err)
	}
	n.Send(ctx, routing.MustParseRoute("echoer"), uint32(7))
	if _, _, err := node.ReceiveBody[string](ctx, n); err == nil {
		t.Fatal("decoding a u32 as a string succeeded")
	}
}

type slowStart struct{ hooked }

func (s *slowStart) Initialize(ctx context.Context, _ node.Sender) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestStartWorkerContext(t *testing.T) {
	n := newNode(t, node.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := n.StartWorker(ctx, "slow", &slowStart{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// TestBeforeBlock: BeforeBlock calls what WithBeforeBlock put in the
// context, and nothing without it; Route calls it before waiting for a
// full mailbox.
func TestBeforeBlock(t *testing.T) {
	node.BeforeBlock(t.Context()) // no function: nothing happens
	calls := 0
	ctx := node.WithBeforeBlock(t.Context(), func() { calls++ })
	node.BeforeBlock(ctx)
	if calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
	n := node.New(node.Config{})
	defer n.Close()
	block := make(chan struct{})
	defer close(block)
	if _, err := n.StartWorkerConfig(t.Context(), node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error {
		<-block
		return nil
	}), node.WorkerConfig{Addresses: []string{"slow"}, MailboxSize: 1}); err != nil {
		t.Fatal(err)
	}
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("slow")}}
	// One in the handler, one in the mailbox: the third waits, after the
	// call, until its context ends.
	for range 2 {
		if err := n.Route(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	before := calls
	// The handler may not have taken the first message yet: route until
	// one waits (a full mailbox).
	for calls == before {
		if err := n.Route(wctx, m); err == nil {
			continue
		} else if !errors.Is(err, node.ErrMailboxFull) {
			t.Fatal(err)
		}
	}
}
