// Package echo provides echo_service: a worker that replies to every message
// with its payload unchanged, to the message's return route (protocol.md
// §9.1). The payload is never decoded, so any BARE value echoes back as the
// same value.
//
// Protocol flow:
//
//	in:  onward [echo_service, ...]   return R          payload P
//	out: onward R                     return [echo_service]  payload P
package echo

import (
	"context"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Address is the well-known address of the echo service.
const Address = "echo_service"

// Worker is the echo worker. Its zero value is ready to use and it is safe
// for concurrent use, so it may run inline.
type Worker struct{}

// HandleMessage replies with the payload unchanged.
func (Worker) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	if len(m.Return()) == 0 {
		return nil // nowhere to reply
	}
	return s.Forward(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  m.Return(),
		Return:  routing.Route{m.Address()},
		Payload: m.Payload(),
	})
}

// Start starts the echo service on n at addr ("" means echo_service). With
// inline set, messages are echoed in the sender's goroutine (no mailbox), as
// the hub does.
func Start(ctx context.Context, n *node.Node, addr string, inline bool) error {
	if addr == "" {
		addr = Address
	}
	_, err := n.StartWorkerConfig(ctx, Worker{}, node.WorkerConfig{Addresses: []string{addr}, Inline: inline})
	return err
}
