package securechannel

import (
	"context"
	"testing"

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
