package securechannel

import (
	"bytes"
	"context"
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
