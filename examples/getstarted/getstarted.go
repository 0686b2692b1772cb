// Package getstarted holds the workers shared by the get_started examples:
// Echoer and Hop, the Go counterparts of the Rust examples' Echoer and Hop
// (examples/rust/get_started/src/echoer.rs and hop.rs).
package getstarted

import (
	"context"
	"fmt"

	"github.com/ockamhub/ockamhub/node"
)

// Echoer is a worker that prints every string it receives and sends it back
// along the message's return route.
type Echoer struct{}

// HandleMessage prints the message and echoes it back to its sender.
func (Echoer) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	msg, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Printf("Address: %s, Received: %s\n", s.Address(), msg)

	// Echo the message body back on its return route.
	return s.Send(ctx, m.Return(), msg)
}

// Hop is a worker that relays every message to the next address of its
// onward route, and asks for replies to come back through it.
type Hop struct{}

// HandleMessage forwards the message one hop further along its onward route.
func (Hop) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	fmt.Printf("Address: %s, Received: onward %s, return %s\n", s.Address(), m.Onward(), m.Return())

	msg := m.Transport()
	// Remove my address from the onward route.
	msg.Onward = msg.Onward.Step()
	// Insert my address at the beginning of the return route.
	msg.Return = msg.Return.Prepend(s.Address())
	// Send the message on along its onward route.
	return s.Forward(ctx, msg)
}
