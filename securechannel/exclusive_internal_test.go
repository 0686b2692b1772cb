package securechannel

import (
	"bytes"
	"context"
	"testing"
	"unsafe"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// within reports whether p lies in the memory of buf.
func within(p, buf []byte) bool {
	if len(p) == 0 || len(buf) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= lo && at+uintptr(len(p)) <= lo+uintptr(len(buf))
}

// inPlaceRig is an established responder endpoint running inline at its
// address_remote on a node, as a transport's reader reaches it, with a
// mailbox "w" for what it decrypts, and an inline relay at "relay" that
// keeps the payload of each message (as WorkerConfig.Inline allows) and
// passes the message on, its return route intact.
type inPlaceRig struct {
	ini, res *endpoint
	n        *node.Node
	sink     *node.Mailbox
	kept     []byte
}

func newInPlaceRig(t *testing.T) *inPlaceRig {
	t.Helper()
	r := &inPlaceRig{}
	r.ini, r.res = establishedPair(t)
	t.Cleanup(r.res.cancel) // ends decryptLoop
	r.n = r.res.ch.node
	ctx := t.Context()
	if _, err := r.n.StartWorkerConfig(ctx, r.res, node.WorkerConfig{Addresses: []string{r.res.ch.remote.Value}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.sink, err = r.n.OpenMailbox("w"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.sink.Close() })
	relay := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		r.kept = m.Payload()
		tm := m.Transport()
		tm.Onward = tm.Onward[1:]
		return s.Forward(ctx, tm)
	})
	if _, err := r.n.StartWorkerConfig(ctx, relay, node.WorkerConfig{Addresses: []string{"relay"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	return r
}

// seal returns a data message from the initiator with counter n.
func (r *inPlaceRig) seal(t *testing.T, n uint16, payload []byte) []byte {
	t.Helper()
	inner := routing.TransportMessage{Onward: routing.Route{r.sink.Address()}, Return: routing.Route{routing.LocalAddress("app")}, Payload: payload}
	b, err := inner.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return appendSealed(nil, r.ini.send, n, b)
}

// TestDecryptsInPlace routes data messages to address_remote as a
// transport's reader does (node.Route from a goroutine of its own, then
// decryptLoop): one that came over a transport hop, routed with a context
// marked by node.WithExclusivePayloads, is decrypted where it lies, the
// payload delivered sharing the received buffer; without the mark, from a
// local sender, or passed on by an inline relay, the received buffer is
// left as it was and the payload delivered is new memory.
func TestDecryptsInPlace(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	tcpHop := routing.TCPAddress("127.0.0.1:4000")
	marked := node.WithExclusivePayloads(ctx)
	remote := routing.Route{r.res.ch.remote}
	viaRelay := routing.Route{routing.LocalAddress("relay"), r.res.ch.remote}
	plain := bytes.Repeat([]byte("plain"), 1000)
	for i, tc := range []struct {
		name    string
		ctx     context.Context
		onward  routing.Route
		ret     routing.Route
		inPlace bool
	}{
		{"transport hop, marked", marked, remote, routing.Route{tcpHop, r.ini.ch.remote}, true},
		{"transport hop, unmarked", ctx, remote, routing.Route{tcpHop, r.ini.ch.remote}, false},
		{"local sender, marked", marked, remote, routing.Route{r.ini.ch.remote}, false},
		{"passed on by an inline relay, marked", marked, viaRelay, routing.Route{tcpHop, r.ini.ch.remote}, false},
	} {
		sealed := r.seal(t, uint16(i), plain)
		received := bytes.Clone(sealed)
		r.kept = nil
		if err := r.n.Route(tc.ctx, routing.TransportMessage{Onward: tc.onward, Return: tc.ret, Payload: received}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := r.sink.Receive(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got.Payload(), plain) {
			t.Fatalf("%s: delivered %d bytes, not the payload sent", tc.name, len(got.Payload()))
		}
		if shared := within(got.Payload(), received); shared != tc.inPlace {
			t.Errorf("%s: payload delivered in the received buffer: %v, want %v", tc.name, shared, tc.inPlace)
		}
		if kept := bytes.Equal(received, sealed); kept == tc.inPlace {
			t.Errorf("%s: received buffer left as it was: %v, want %v", tc.name, kept, !tc.inPlace)
		}
	}
}

// TestInlineRelayKeepsPayload: node.WorkerConfig.Inline lets an inline
// worker keep a message's payload, and node.Message says a payload stays
// valid while referenced. An inline relay that keeps the payload of a
// message the transport marked and passes it on, return route intact, to a
// channel's address_remote with the context it was given (as every inline
// relay does) still has the bytes it kept, not the plaintext: the mark is
// the relay's (node.Message.ExclusivePayload), not the channel's. (With the
// mark on the context, the channel decrypted in place what the relay kept.)
func TestInlineRelayKeepsPayload(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	sealed := r.seal(t, 0, []byte("plaintext"))
	// As a TCP reader without ReuseBodies routes a frame it read.
	if err := r.n.Route(node.WithExclusivePayloads(ctx), routing.TransportMessage{
		Onward:  routing.Route{routing.LocalAddress("relay"), r.res.ch.remote},
		Return:  routing.Route{routing.TCPAddress("127.0.0.1:4000"), r.ini.ch.remote},
		Payload: bytes.Clone(sealed),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sink.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.kept, sealed) {
		t.Errorf("the payload the relay kept was modified after it passed it on: %x..., want %x...", r.kept[:8], sealed[:8])
	}
}
