package securechannel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// recordingSender is a node.Sender that records what a worker sends.
type recordingSender struct {
	n    *node.Node
	sent []routing.TransportMessage
}

func (s *recordingSender) Address() routing.Address { return routing.LocalAddress("rec") }
func (s *recordingSender) Node() *node.Node         { return s.n }
func (s *recordingSender) Send(ctx context.Context, r routing.Route, v any) error {
	return s.SendFrom(ctx, s.Address(), r, v)
}
func (s *recordingSender) SendFrom(_ context.Context, from routing.Address, r routing.Route, v any) error {
	s.sent = append(s.sent, routing.TransportMessage{Onward: r, Return: routing.Route{from}, Payload: v.(node.Raw)})
	return nil
}
func (s *recordingSender) Forward(_ context.Context, m routing.TransportMessage) error {
	s.sent = append(s.sent, m)
	return nil
}

// establishedPair returns an initiator and a responder endpoint sharing the
// keys of a real handshake, without workers: for driving HandleMessage
// directly.
func establishedPair(t testing.TB) (ini, res *endpoint) {
	t.Helper()
	n := node.New(node.Config{})
	t.Cleanup(func() { n.Close() })
	mk := func(initiator bool) *endpoint {
		kp, err := noise.GenerateKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := noise.NewHandshake(noise.Config{Initiator: initiator, StaticKeyPair: kp})
		if err != nil {
			t.Fatal(err)
		}
		return newEndpoint(newChannel(n, initiator, nil, nil), hs)
	}
	ini, res = mk(true), mk(false)
	msg := []byte(nil)
	for i, pair := range [][2]*endpoint{{ini, res}, {res, ini}, {ini, res}} {
		var err error
		if msg, err = pair[0].hs.WriteMessage(nil, nil); err != nil {
			t.Fatalf("M%d: %v", i+1, err)
		}
		if _, err = pair[1].hs.ReadMessage(nil, msg); err != nil {
			t.Fatalf("M%d: %v", i+1, err)
		}
	}
	for _, ep := range []*endpoint{ini, res} {
		if err := ep.complete(); err != nil {
			t.Fatal(err)
		}
	}
	ini.remoteRoute = routing.Route{res.ch.remote}
	res.remoteRoute = routing.Route{ini.ch.remote}
	for _, ep := range []*endpoint{ini, res} {
		ep.direct.Store(true) // no handshake goroutine: decrypt inline at once
		ep.running = false
	}
	return ini, res
}

// TestNonceExhausted: the sender uses counters up to 65534 and then refuses
// with ErrNonceExhausted (protocol.md §10.5: 65535 is never used, and there
// is no rekeying), counting each refusal; nothing is sent.
func TestNonceExhausted(t *testing.T) {
	ini, res := establishedPair(t)
	ini.sendN = noise.MaxNonce - 2
	s := &recordingSender{}
	plain := node.NewMessage(ini.ch.local, routing.TransportMessage{
		Onward:  routing.Route{ini.ch.local, routing.LocalAddress("echo_service")},
		Return:  routing.Route{routing.LocalAddress("app")},
		Payload: []byte("x"),
	})
	ctx := t.Context()
	for i, want := range []error{nil, nil, ErrNonceExhausted, ErrNonceExhausted} {
		if err := ini.encrypt(ctx, s, plain); !errors.Is(err, want) {
			t.Fatalf("message %d: %v, want %v", i, err, want)
		}
	}
	if len(s.sent) != 2 {
		t.Fatalf("sent %d messages, want 2", len(s.sent))
	}
	if st := ini.ch.Stats(); st.Sent != 2 || st.NonceExhausted != 2 {
		t.Errorf("stats %+v, want Sent 2, NonceExhausted 2", st)
	}
	// The two that went out carry counters 65533 and 65534, and decrypt.
	r := &recordingSender{}
	for i, m := range s.sent {
		if err := res.decrypt(ctx, r, node.NewMessage(res.ch.remote, m), false); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := openSealed(res.recv, m.Payload); n != uint16(noise.MaxNonce-2+i) {
			t.Errorf("message %d has counter %d", i, n)
		}
	}
	if st := res.ch.Stats(); st.Received != 2 {
		t.Errorf("responder stats %+v, want Received 2", st)
	}
}

// TestEndpointDrops drives the receiving side with bad data messages: each
// is dropped and counted under its reason, none is an error of the worker,
// and a genuine message still goes through afterwards; with read-only
// payloads and with payloads decrypted in place (node.Message.ExclusivePayload).
func TestEndpointDrops(t *testing.T) {
	for _, exclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive=%v", exclusive), func(t *testing.T) { testEndpointDrops(t, exclusive) })
	}
}

func testEndpointDrops(t *testing.T, exclusive bool) {
	ini, res := establishedPair(t)
	ctx := t.Context()
	seal := func(n uint16, inner []byte) routing.TransportMessage {
		return routing.TransportMessage{Onward: routing.Route{res.ch.remote}, Payload: appendSealed(nil, ini.send, n, inner)}
	}
	good := routing.TransportMessage{Onward: routing.Route{routing.LocalAddress("w")}, Return: routing.Route{routing.LocalAddress("app")}, Payload: []byte("hi")}
	goodInner, _ := good.MarshalBinary()
	tampered := seal(0, goodInner)
	tampered.Payload[5] ^= 0x80

	for _, tc := range []struct {
		name string
		m    routing.TransportMessage
		stat func(Stats) uint64
	}{
		{"empty payload", routing.TransportMessage{}, func(s Stats) uint64 { return s.DecryptFailures }},
		{"tampered", tampered, func(s Stats) uint64 { return s.DecryptFailures }},
		{"wrong key", routing.TransportMessage{Payload: appendSealed(nil, res.send, 0, goodInner)}, func(s Stats) uint64 { return s.DecryptFailures }},
		{"inner not a message", seal(1, []byte{1, 5}), func(s Stats) uint64 { return s.DecryptFailures }},
		{"replay of counter 1", seal(1, goodInner), func(s Stats) uint64 { return s.Replays }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.stat(res.ch.Stats())
			r := &recordingSender{}
			m := tc.m
			m.Payload = bytes.Clone(m.Payload)
			if err := res.decrypt(ctx, r, node.NewMessage(res.ch.remote, m), exclusive); err != nil {
				t.Fatalf("decrypt: %v, want nil (dropped)", err)
			}
			if len(r.sent) != 0 {
				t.Errorf("forwarded %v", r.sent)
			}
			if !exclusive && !bytes.Equal(m.Payload, tc.m.Payload) {
				t.Errorf("a read-only payload was modified")
			}
			if got := tc.stat(res.ch.Stats()); got != before+1 {
				t.Errorf("counter %d, want %d", got, before+1)
			}
		})
	}
	r := &recordingSender{}
	genuine := seal(2, goodInner)
	if err := res.decrypt(ctx, r, node.NewMessage(res.ch.remote, genuine), exclusive); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 1 {
		t.Fatalf("genuine message: forwarded %d, want 1", len(r.sent))
	}
	want := routing.Route{res.ch.local, routing.LocalAddress("app")}
	if got := r.sent[0]; !got.Onward.Equal(good.Onward) || !got.Return.Equal(want) || string(got.Payload) != "hi" {
		t.Errorf("forwarded %+v, want onward %v return %v payload hi", got, good.Onward, want)
	}
	if sealed := appendSealed(nil, ini.send, 2, goodInner); exclusive == bytes.Equal(genuine.Payload, sealed) {
		t.Errorf("exclusive %v: the payload received was modified: %v", exclusive, !bytes.Equal(genuine.Payload, sealed))
	}
}

func TestEncryptRefusesEmptyRoute(t *testing.T) {
	ini, _ := establishedPair(t)
	s := &recordingSender{}
	m := node.NewMessage(ini.ch.local, routing.TransportMessage{Onward: routing.Route{ini.ch.local}, Payload: []byte("x")})
	if err := ini.encrypt(t.Context(), s, m); !errors.Is(err, node.ErrEmptyRoute) || len(s.sent) != 0 {
		t.Errorf("err %v, sent %d; want ErrEmptyRoute, 0", err, len(s.sent))
	}
	if ini.sendN != 0 {
		t.Errorf("counter advanced to %d for a refused message", ini.sendN)
	}
}
