package securechannel

import (
	"bytes"
	"context"
	"os"
	"testing"
	"unsafe"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// TestExclusivePayloadNeedsTransportHop: a payload is decrypted in place
// only when the context says the transport owns it and the message came in
// over a transport hop; a message an inline worker made on this node (its
// return route starts with a local address) keeps its payload even with
// the transport's context.
func TestExclusivePayloadNeedsTransportHop(t *testing.T) {
	marked := node.WithExclusivePayloads(context.Background())
	msg := func(ret ...routing.Address) *node.Message {
		return node.NewMessage(routing.LocalAddress("r_remote"), routing.TransportMessage{Return: ret, Payload: []byte{1}})
	}
	tcp := routing.TCPAddress("127.0.0.1:4000")
	local := routing.LocalAddress("w")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		m    *node.Message
		want bool
	}{
		{"transport hop, marked", marked, msg(tcp, local), true},
		{"transport hop, unmarked", context.Background(), msg(tcp, local), false},
		{"local sender, marked", marked, msg(local), false},
		{"no return route, marked", marked, msg(), false},
	} {
		if got := exclusivePayload(tc.ctx, tc.m); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// forwardSender is a node.Sender whose Forward hands each message over a
// channel: decryptLoop forwards from a goroutine of its own.
type forwardSender struct {
	recordingSender
	fwd chan routing.TransportMessage
}

func (s *forwardSender) Forward(_ context.Context, m routing.TransportMessage) error {
	s.fwd <- m
	return nil
}

// within reports whether p lies in the memory of buf.
func within(p, buf []byte) bool {
	if len(p) == 0 || len(buf) == 0 {
		return false
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(unsafe.Pointer(unsafe.SliceData(buf)))+uintptr(len(buf))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= lo && at+uintptr(len(p)) <= hi
}

// TestHandleMessageDecryptsInPlace drives address_remote as a transport's
// reader does (HandleMessage, then decryptLoop): a data message that came
// over a transport hop with a context marked by node.WithExclusivePayloads
// is decrypted where it lies, the payload delivered sharing the received
// buffer; without the mark, or from a local sender, the received buffer is
// left as it was and the payload delivered is new memory.
func TestHandleMessageDecryptsInPlace(t *testing.T) {
	ini, res := establishedPair(t)
	t.Cleanup(res.cancel) // ends decryptLoop
	s := &forwardSender{fwd: make(chan routing.TransportMessage, 1)}
	inner := routing.TransportMessage{Onward: routing.Route{routing.LocalAddress("w")}, Return: routing.Route{routing.LocalAddress("app")}, Payload: bytes.Repeat([]byte("plain"), 1000)}
	innerBytes, err := inner.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tcpHop := routing.TCPAddress("127.0.0.1:4000")
	marked := node.WithExclusivePayloads(t.Context())
	for i, tc := range []struct {
		name    string
		ctx     context.Context
		ret     routing.Route
		inPlace bool
	}{
		{"transport hop, marked", marked, routing.Route{tcpHop, ini.ch.remote}, true},
		{"transport hop, unmarked", t.Context(), routing.Route{tcpHop, ini.ch.remote}, false},
		{"local sender, marked", marked, routing.Route{ini.ch.remote}, false},
	} {
		sealed := appendSealed(nil, ini.send, uint16(i), innerBytes)
		received := bytes.Clone(sealed)
		m := node.NewMessage(res.ch.remote, routing.TransportMessage{Onward: routing.Route{res.ch.remote}, Return: tc.ret, Payload: received})
		if err := res.HandleMessage(tc.ctx, s, m); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got routing.TransportMessage
		select {
		case got = <-s.fwd:
		case <-t.Context().Done():
			t.Fatalf("%s: nothing delivered", tc.name)
		}
		if !bytes.Equal(got.Payload, inner.Payload) {
			t.Fatalf("%s: delivered %d bytes, not the payload sent", tc.name, len(got.Payload))
		}
		if shared := within(got.Payload, received); shared != tc.inPlace {
			t.Errorf("%s: payload delivered in the received buffer: %v, want %v", tc.name, shared, tc.inPlace)
		}
		if kept := bytes.Equal(received, sealed); kept == tc.inPlace {
			t.Errorf("%s: received buffer left as it was: %v, want %v", tc.name, kept, !tc.inPlace)
		}
	}
}

// TestInlineRelayKeepsPayload reproduces a hazard of the context mark
// (review of the in-place decryption, branch rsec): node.WorkerConfig.Inline
// lets an inline worker keep a message's payload ("keep what it holds (its
// routes, its payload), not the pointer"), and node.Message says a payload
// stays valid while referenced. An inline relay on the receiving node that
// keeps the payload and forwards the message, return route intact, to a
// channel's address_remote with the context the transport gave it (as
// every inline relay does) has the bytes it kept overwritten with the
// plaintext: the mark says "exclusive" for every message routed with the
// reader's context, not for the one frame the transport owns. The
// return-route check cannot tell this relay from the transport. A fix needs
// the ownership on the message (set by the reader per frame, read.go route,
// or by node.Route for the first inline delivery only), outside this lane.
// Skipped unless OCKAMHUB_TEST_KNOWN_HAZARDS is set; it fails today.
func TestInlineRelayKeepsPayload(t *testing.T) {
	if os.Getenv("OCKAMHUB_TEST_KNOWN_HAZARDS") == "" {
		t.Skip("known hazard of node.WithExclusivePayloads; set OCKAMHUB_TEST_KNOWN_HAZARDS=1 to reproduce")
	}
	ini, res := establishedPair(t)
	t.Cleanup(res.cancel)
	n := res.ch.node
	ctx := t.Context()
	if _, err := n.StartWorkerConfig(ctx, res, node.WorkerConfig{Addresses: []string{res.ch.remote.Value}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	sink, err := n.OpenMailbox("w")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var kept []byte // what the relay keeps, as Inline allows
	relay := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		kept = m.Payload()
		tm := m.Transport()
		tm.Onward = tm.Onward[1:]
		return s.Forward(ctx, tm)
	})
	if _, err := n.StartWorkerConfig(ctx, relay, node.WorkerConfig{Addresses: []string{"relay"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	inner := routing.TransportMessage{Onward: routing.Route{sink.Address()}, Return: routing.Route{routing.LocalAddress("app")}, Payload: []byte("plaintext")}
	innerBytes, err := inner.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sealed := appendSealed(nil, ini.send, 0, innerBytes)
	// As a TCP reader without ReuseBodies routes a frame it read.
	marked := node.WithExclusivePayloads(ctx)
	if err := n.Route(marked, routing.TransportMessage{
		Onward:  routing.Route{routing.LocalAddress("relay"), res.ch.remote},
		Return:  routing.Route{routing.TCPAddress("127.0.0.1:4000"), ini.ch.remote},
		Payload: bytes.Clone(sealed),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, sealed) {
		t.Errorf("the payload the relay kept was modified after it forwarded it: %x..., want %x...", kept[:8], sealed[:8])
	}
}
