package securechannel_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

const hs1 = "noise-xx-handshake-1.hex"

// TestVectorFrames runs a channel with the fixed keys of protocol.md §11.9
// through a tap and checks that every payload it relays is the Rust framing
// byte for byte: the listener message (both forms), M2 and M3 as Vec<u8>,
// and the "Hello Ockam!" request and echo reply under k2 and k1 with
// counter 0 (sc-data-*.hex: the payload field is 37 36 ‖ blob).
func TestVectorFrames(t *testing.T) {
	for _, tc := range []struct {
		form securechannel.ListenerMessageForm
		file string
	}{
		{securechannel.ListenerMessageEnum, "sc-m1-listener-message-enum.hex"},
		{securechannel.ListenerMessageStruct, "sc-m1-listener-message-struct.hex"},
	} {
		// The 2021 Rust initiators check nothing (asked for explicitly
		// here); a Go initiator may pin the Rust listener's key, which
		// changes no byte on the wire.
		for _, pin := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/pinned=%v", tc.form, pin), func(t *testing.T) {
				n := newNode(t)
				tp := startTap(t, n, "tap")
				lcfg := securechannel.ListenerConfig{AcceptAnyInitiator: true, StaticKeyPair: keyPair(t, vector(t, hs1, "responder-static-private"))}
				securechannel.SetListenerEphemeral(&lcfg, keyPair(t, vector(t, hs1, "responder-ephemeral-private")))
				listen(t, n, listenerName, lcfg)
				cfg := securechannel.Config{InsecureAcceptAnyPeer: !pin, StaticKeyPair: keyPair(t, vector(t, hs1, "initiator-static-private")), ListenerMessage: tc.form}
				if pin {
					cfg.ExpectedPeerStatic = noise.Key(vector(t, hs1, "responder-static-public"))
				}
				securechannel.SetEphemeral(&cfg, keyPair(t, vector(t, hs1, "initiator-ephemeral-private")))
				ch := create(t, n, routing.Route{tp.addr, routing.LocalAddress(listenerName)}, cfg)

				reply, ret := roundTrip(t, n, ch, "Hello Ockam!")
				if reply != "Hello Ockam!" || !ret.Equal(routing.Route{ch.Address(), echoRoute}) {
					t.Errorf("reply %q from %v, want %q from %v", reply, ret, "Hello Ockam!", routing.Route{ch.Address(), echoRoute})
				}
				if got, want := ch.PeerStatic(), noise.Key(vector(t, hs1, "responder-static-public")); got != want {
					t.Errorf("PeerStatic %x, want %x", got, want)
				}
				if got, want := ch.HandshakeHash(), vector(t, hs1, "handshake-hash"); !bytes.Equal(got[:], want) {
					t.Errorf("HandshakeHash %x, want %x", got, want)
				}

				frames := tp.recorded()
				want := [][]byte{
					vector(t, tc.file, "listener-message"),
					bare.AppendData(nil, vector(t, hs1, "m2")),
					bare.AppendData(nil, vector(t, hs1, "m3")),
					vector(t, "sc-data-initiator-to-responder.hex", "payload-field")[1:],
					vector(t, "sc-data-responder-to-initiator.hex", "payload-field")[1:],
				}
				names := []string{"M1 listener message", "M2", "M3", "request", "reply"}
				if len(frames) != len(want) {
					t.Fatalf("tap relayed %d messages, want %d", len(frames), len(want))
				}
				for i, f := range frames {
					if !bytes.Equal(f.payload, want[i]) {
						t.Errorf("%s payload:\n got %x\nwant %x", names[i], f.payload, want[i])
					}
				}
				// Handshake replies and data travel between the two
				// address_remote workers (protocol.md §10.3).
				if !frames[0].ret.Equal(routing.Route{tp.addr, ch.RemoteAddress()}) {
					t.Errorf("M1 return route %v, want [tap, address_remote]", frames[0].ret)
				}
				for _, i := range []int{1, 4} {
					if !frames[i].onward.Equal(routing.Route{ch.RemoteAddress()}) {
						t.Errorf("%s onward %v, want [%v]", names[i], frames[i].onward, ch.RemoteAddress())
					}
				}
			})
		}
	}
}

// TestChannelOneNode is example 05: a listener, echo_service and an
// initiator on one node.
func TestChannelOneNode(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	for i := range 20 {
		msg := fmt.Sprintf("Hello Ockam! %d", i)
		if got, _ := roundTrip(t, n, ch, msg); got != msg {
			t.Fatalf("reply %q, want %q", got, msg)
		}
	}
	if st := ch.Stats(); st.Sent != 20 || st.Received != 20 || st.Handshakes != 1 {
		t.Errorf("initiator stats %+v", st)
	}
	if st := l.Stats(); st.Sent != 20 || st.Received != 20 || st.Handshakes != 1 || st.HandshakeFailures != 0 {
		t.Errorf("listener stats %+v", st)
	}
	if !ch.IsInitiator() || ch.Address() == ch.RemoteAddress() || len(ch.Address().Value) != 32 {
		t.Errorf("addresses %v %v", ch.Address(), ch.RemoteAddress())
	}
}

// TestManyHops is example 06: the listener is three relay hops away, and
// several channels run at once over the same hops.
func TestManyHops(t *testing.T) {
	n := newNode(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		startTap(t, n, h)
	}
	listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	route := routing.MustParseRoute("h1 => h2 => h3 => " + listenerName)
	chans := make([]*securechannel.Channel, 3)
	for i := range chans {
		chans[i] = create(t, n, route, securechannel.Config{InsecureAcceptAnyPeer: true})
	}
	for i, ch := range chans {
		msg := fmt.Sprintf("Hello Ockam! %d", i)
		if got, _ := roundTrip(t, n, ch, msg); got != msg {
			t.Errorf("channel %d: reply %q, want %q", i, got, msg)
		}
	}
}

// TestPeerLookup: a worker behind the listener finds the channel a message
// came through, and the initiator's static key, from its return route.
func TestPeerLookup(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	err := n.StartWorker(context.Background(), "whoami", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		reply := "unknown"
		if head, ok := m.Return().Next(); ok {
			if ch, ok := l.Channel(head); ok {
				k := ch.PeerStatic()
				reply = hex.EncodeToString(k[:])
			}
		}
		return s.Send(ctx, m.Return(), reply)
	}))
	if err != nil {
		t.Fatal(err)
	}
	kp := newKeyPair(t)
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true, StaticKeyPair: kp})
	ctx := t.Context()
	if err := n.Send(ctx, routing.Route{ch.Address(), routing.LocalAddress("whoami")}, "?"); err != nil {
		t.Fatal(err)
	}
	if got, _ := receive(t, ctx, n); got != hex.EncodeToString(kp.Public[:]) {
		t.Errorf("whoami = %s, want %x", got, kp.Public)
	}
	if _, ok := l.Channel(ch.Address()); ok {
		t.Error("the initiator's address_local is not one of the listener's channels")
	}
}

// TestTamperedAndReplayed: a data message with one ciphertext byte flipped
// is dropped and counted and the next genuine one goes through; a duplicated
// message, and an old one replayed later, are dropped and counted as
// replays.
func TestTamperedAndReplayed(t *testing.T) {
	n := newNode(t)
	tp := startTap(t, n, "tap")
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ch := create(t, n, routing.Route{tp.addr, l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	toResponder := func(tm routing.TransportMessage) bool { return !tm.Onward.Equal(routing.Route{ch.RemoteAddress()}) }
	ctx := t.Context()
	// Create returns once M3 is sent; let it reach the responder before the
	// tap starts editing, so that only data messages are edited.
	eventually(t, "the responder to complete", func() bool { return l.Stats().Handshakes == 1 })

	// 1. Tamper with the next request: it is dropped, the next one arrives.
	tp.setEdit(func(i int, tm routing.TransportMessage) []routing.TransportMessage {
		if toResponder(tm) {
			tp.setEdit(nil)                        // once
			tm.Payload[len(tm.Payload)-20] ^= 0x01 // a ciphertext byte, before the tag
		}
		return []routing.TransportMessage{tm}
	})
	for _, s := range []string{"tampered", "genuine 1"} {
		if err := n.Send(ctx, routing.Route{ch.Address(), echoRoute}, s); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := receive(t, ctx, n); got != "genuine 1" {
		t.Fatalf("first reply %q, want %q", got, "genuine 1")
	}
	if st := l.Stats(); st.DecryptFailures != 1 || st.Received != 1 {
		t.Errorf("after tampering: listener stats %+v, want DecryptFailures 1, Received 1", st)
	}

	// 2. Duplicate the next request: the copy is dropped. Were it not, the
	// next reply would be "dup" again instead of "genuine 2".
	var captured routing.TransportMessage
	tp.setEdit(func(i int, tm routing.TransportMessage) []routing.TransportMessage {
		if toResponder(tm) {
			tp.setEdit(nil) // once
			captured = tm
			return []routing.TransportMessage{tm, tm}
		}
		return []routing.TransportMessage{tm}
	})
	for _, s := range []string{"dup", "genuine 2"} {
		if err := n.Send(ctx, routing.Route{ch.Address(), echoRoute}, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"dup", "genuine 2"} {
		if got, _ := receive(t, ctx, n); got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
	if st := l.Stats(); st.Replays != 1 || st.Received != 3 {
		t.Errorf("after duplicating: listener stats %+v, want Replays 1, Received 3", st)
	}

	// 3. Replay the captured ciphertext later, as someone who recorded it
	// at a relay could; then check the channel still works.
	if err := n.Route(ctx, captured); err != nil {
		t.Fatal(err)
	}
	if got, _ := roundTrip(t, n, ch, "genuine 3"); got != "genuine 3" {
		t.Fatalf("reply %q, want %q", got, "genuine 3")
	}
	if st := l.Stats(); st.Replays != 2 || st.Received != 4 || st.DecryptFailures != 1 {
		t.Errorf("after replaying: listener stats %+v, want Replays 2, Received 4, DecryptFailures 1", st)
	}
	// The same holds in the other direction.
	if st := ch.Stats(); st.Received != 4 || st.DecryptFailures != 0 || st.Replays != 0 {
		t.Errorf("initiator stats %+v", st)
	}
}

// TestMITM: someone on the route answers M1 with their own M2 before the
// genuine responder does. Without a pin the initiator accepts the
// attacker's key: the channel is encrypted, not authenticated. With the
// responder's key pinned the forged M2 is dropped and counted, and the
// genuine handshake completes.
func TestMITM(t *testing.T) {
	for _, tc := range []struct {
		pin  bool
		form securechannel.ListenerMessageForm
	}{{false, securechannel.ListenerMessageEnum}, {true, securechannel.ListenerMessageEnum}, {false, securechannel.ListenerMessageStruct}, {true, securechannel.ListenerMessageStruct}} {
		pin := tc.pin
		t.Run(fmt.Sprintf("pinned=%v/%v", pin, tc.form), func(t *testing.T) {
			n := newNode(t)
			l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
			attacker := newKeyPair(t)
			// The attacker's relay reads M1, sends a forged M2 to the
			// initiator, then passes M1 on to the real listener. It ignores
			// everything else.
			done := false
			err := n.StartWorker(context.Background(), "evil", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
				if done {
					return nil
				}
				done = true
				hs, err := noise.NewHandshake(noise.Config{StaticKeyPair: attacker})
				if err != nil {
					return err
				}
				p := m.Payload()
				m1 := p[2:34] // enum: 00 20 <M1>
				if tc.form == securechannel.ListenerMessageStruct {
					m1 = p[1:33] // struct: 20 <M1> 00
				}
				if _, err := hs.ReadMessage(nil, m1); err != nil {
					return err
				}
				m2, err := hs.WriteMessage(nil, nil)
				if err != nil {
					return err
				}
				if err := s.Send(ctx, m.Return(), node.Raw(bare.AppendData(nil, m2))); err != nil {
					return err
				}
				return s.Forward(ctx, routing.TransportMessage{Onward: m.Onward().Step(), Return: m.Return(), Payload: p})
			}))
			if err != nil {
				t.Fatal(err)
			}
			cfg := securechannel.Config{ListenerMessage: tc.form}
			if pin {
				cfg.ExpectedPeerStatic = l.StaticPublic()
			} else {
				cfg.InsecureAcceptAnyPeer = true
			}
			ch := create(t, n, routing.MustParseRoute("evil => "+listenerName), cfg)
			if pin {
				if ch.PeerStatic() != l.StaticPublic() {
					t.Errorf("PeerStatic %x, want the listener's %x", ch.PeerStatic(), l.StaticPublic())
				}
				if st := ch.Stats(); st.Unauthorized != 1 {
					t.Errorf("stats %+v, want Unauthorized 1", st)
				}
				if got, _ := roundTrip(t, n, ch, "hi"); got != "hi" {
					t.Errorf("reply %q", got)
				}
			} else if ch.PeerStatic() != attacker.Public {
				t.Errorf("PeerStatic %x, want the attacker's %x", ch.PeerStatic(), attacker.Public)
			}
		})
	}
}

// TestPinMismatch: with the wrong key pinned, Create fails when ctx ends
// and says why.
func TestPinMismatch(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	workers := n.Stats().Workers
	ch, err := securechannel.Create(ctx, n, routing.Route{l.Address()}, securechannel.Config{ExpectedPeerStatic: newKeyPair(t).Public})
	if !errors.Is(err, securechannel.ErrUnauthorizedPeer) || !errors.Is(err, context.DeadlineExceeded) || ch != nil {
		t.Fatalf("Create = %v, %v; want ErrUnauthorizedPeer and DeadlineExceeded", ch, err)
	}
	// The initiator's worker is gone; the responder waits for M3 until its
	// handshake timeout.
	if got := n.Stats().Workers; got != workers+workersPerEnd {
		t.Errorf("%d workers, want %d (the listener's pending responder only)", got, workers+workersPerEnd)
	}
}

// TestAuthorized: a listener that allows only some initiator keys stops the
// responder of any other after M3; nothing it sends is delivered.
func TestAuthorized(t *testing.T) {
	n := newNode(t)
	allowed := newKeyPair(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{Authorized: securechannel.AllowKeys(allowed.Public)})

	good := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true, StaticKeyPair: allowed})
	if got, _ := roundTrip(t, n, good, "ok"); got != "ok" {
		t.Fatalf("reply %q", got)
	}

	workers := n.Stats().Workers
	// The initiator cannot tell: M3 is the last handshake message.
	bad := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	eventually(t, "the unauthorized responder to stop", func() bool {
		return l.Stats().Unauthorized == 1 && n.Stats().Workers == workers+workersPerEnd // + the initiator
	})
	ctx := t.Context()
	errs := n.Stats().WorkerErrors
	if err := n.Send(ctx, routing.Route{bad.Address(), echoRoute}, "let me in"); err != nil {
		t.Fatal(err)
	}
	// The responder is gone, so the initiator cannot even deliver it.
	eventually(t, "the initiator to fail to send", func() bool { return n.Stats().WorkerErrors == errs+1 })
	// The good channel still works, and its reply is the next message.
	if got, _ := roundTrip(t, n, good, "still ok"); got != "still ok" {
		t.Fatalf("reply %q", got)
	}
	if st := l.Stats(); st.Handshakes != 1 || st.Received != 2 {
		t.Errorf("listener stats %+v, want Handshakes 1, Received 2", st)
	}
}

// sendRaw sends payload from a fresh mailbox to route and returns the
// mailbox, for playing a hand-made initiator.
func sendRaw(t *testing.T, n *node.Node, route routing.Route, payload []byte) *node.Mailbox {
	t.Helper()
	mb, err := n.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	if err := mb.Send(t.Context(), route, node.Raw(payload)); err != nil {
		t.Fatal(err)
	}
	return mb
}

// TestBadFirstMessages: first messages of the wrong form or size are dropped
// and counted by the listener, which creates no responder and keeps working.
func TestBadFirstMessages(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	route := routing.Route{l.Address()}
	m1 := bytes.Repeat([]byte{9}, 32)
	bad := [][]byte{
		nil,
		{0},
		append([]byte{0, 31}, m1[:31]...),
		append([]byte{0, 32}, append(m1, 0)...),
		append([]byte{32}, m1...),
		append(append([]byte{32}, m1...), 7),
		bare.AppendData(nil, append([]byte{0, 32}, m1...)), // wrapped once too often
		[]byte("\x08register"),
	}
	workers := n.Stats().Workers
	for _, p := range bad {
		sendRaw(t, n, route, p)
	}
	eventually(t, "the listener to drop them", func() bool { return l.Stats().HandshakeFailures == uint64(len(bad)) })
	if got := n.Stats().Workers; got != workers+len(bad) { // the mailboxes only
		t.Errorf("%d workers, want %d", got, workers+len(bad))
	}
	// A well-formed M1 whose ephemeral key is a low-order point: the
	// responder's ee DH fails, and it stops.
	sendRaw(t, n, route, append([]byte{0, 32}, make([]byte, 32)...))
	eventually(t, "the responder to give up", func() bool {
		return l.Stats().HandshakeFailures == uint64(len(bad)+1) && n.Stats().Workers == workers+len(bad)+1
	})
	ch := create(t, n, route, securechannel.Config{InsecureAcceptAnyPeer: true})
	if got, _ := roundTrip(t, n, ch, "hi"); got != "hi" {
		t.Errorf("reply %q", got)
	}
}

// TestHandshakeLimits: a responder whose initiator never sends M3 is stopped
// after HandshakeTimeout, and while one is pending, a listener with
// MaxPendingHandshakes 1 gives its slot to the next first message (the
// oldest half-open handshake is dropped and counted as Overloaded).
func TestHandshakeLimits(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, HandshakeTimeout: 100 * time.Millisecond, MaxPendingHandshakes: 1})
	workers := n.Stats().Workers

	hs, err := noise.NewHandshake(noise.Config{Initiator: true, StaticKeyPair: newKeyPair(t)})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := hs.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := append([]byte{0, 32}, m1...)
	mb := sendRaw(t, n, routing.Route{l.Address()}, first)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	m, err := mb.Receive(ctx) // M2: the responder is pending now
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Payload()) != 97 {
		t.Errorf("M2 payload is %d bytes, want 97", len(m.Payload()))
	}
	sendRaw(t, n, routing.Route{l.Address()}, first)
	eventually(t, "the first handshake to be displaced", func() bool { return l.Stats().Overloaded == 1 })
	eventually(t, "the responder to time out", func() bool {
		return l.Stats().HandshakeTimeouts == 1 && n.Stats().Workers == workers+2 // the two mailboxes
	})
	// The slot is free again.
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	if got, _ := roundTrip(t, n, ch, "hi"); got != "hi" {
		t.Errorf("reply %q", got)
	}
}

// TestCreateNoListener: Create gives up when ctx ends, stopping its worker.
func TestCreateNoListener(t *testing.T) {
	n := newNode(t)
	mb, err := n.OpenMailbox("void")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	workers := n.Stats().Workers
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := securechannel.Create(ctx, n, routing.Route{mb.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create: %v, want DeadlineExceeded", err)
	}
	if got := n.Stats().Workers; got != workers {
		t.Errorf("%d workers after Create failed, want %d", got, workers)
	}
	if _, err := securechannel.Create(t.Context(), n, routing.Route{routing.LocalAddress("nobody")}, securechannel.Config{InsecureAcceptAnyPeer: true}); !errors.Is(err, node.ErrUnknownAddress) {
		t.Errorf("Create to an unknown worker: %v, want ErrUnknownAddress", err)
	}
	if _, err := securechannel.Create(t.Context(), n, nil, securechannel.Config{InsecureAcceptAnyPeer: true}); !errors.Is(err, node.ErrEmptyRoute) {
		t.Errorf("Create with no route: %v, want ErrEmptyRoute", err)
	}
}

// TestClose: Close is idempotent, stops the worker, and a listener's Close
// stops its channels.
func TestClose(t *testing.T) {
	n := newNode(t)
	workers := n.Stats().Workers
	l, err := securechannel.Listen(t.Context(), n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := securechannel.Create(t.Context(), n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Stats().Workers; got != workers+1+2*workersPerEnd {
		t.Errorf("%d workers, want %d (listener, responder, initiator)", got, workers+1+2*workersPerEnd)
	}
	for range 2 {
		if err := ch.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := n.Stats().Workers; got != workers {
		t.Errorf("%d workers after Close, want %d", got, workers)
	}
	if _, err := securechannel.Listen(t.Context(), n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true}); err != nil {
		t.Errorf("the listener address is free again: %v", err)
	}
}

// TestIdleTimeout: an established responder that carries nothing for
// IdleTimeout is stopped; one in use is not.
func TestIdleTimeout(t *testing.T) {
	// Generous against a loaded machine: the busy channel must never go
	// this long between round trips, the idle one must.
	const idle = 600 * time.Millisecond
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, IdleTimeout: idle})
	busy := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	workers := n.Stats().Workers
	create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true}) // left idle
	deadline := time.Now().Add(2 * idle)
	for time.Now().Before(deadline) {
		if got, _ := roundTrip(t, n, busy, "keepalive"); got != "keepalive" {
			t.Fatalf("reply %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "the idle responder to stop", func() bool {
		return l.Stats().IdleTimeouts == 1 && n.Stats().Workers == workers+workersPerEnd // + the idle initiator
	})
	if got, _ := roundTrip(t, n, busy, "still here"); got != "still here" {
		t.Fatalf("reply %q", got)
	}
}
