package loadgen

import (
	"context"
	"fmt"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// secureListener is the listener's address, as in `ockamhub secure-channel
// listen` and the Rust example 12.
const secureListener = "secure_channel"

// channelMessages is how many messages a client sends through one secure
// channel before it opens a new one: a channel end refuses its 65536th
// message (the u16 nonce of protocol.md §10.5), and each echo uses one
// nonce in each direction.
const channelMessages = 60000

// secureSetup builds the Secure scenario on the library: one listener node
// connected to the hub, running echo_service and a secure channel listener
// that it registers with the hub's forwarding service (as `ockamhub
// secure-channel listen` does); and per client a node that creates a channel
// through the hub and the forwarder, then sends to echo_service through it.
func secureSetup(ctx context.Context, r *run) error {
	ln, err := r.newLibNode(ctx)
	if err != nil {
		return err
	}
	// Not inline, as in the command: echo replies through the responder.
	if err := echo.Start(ctx, ln.n, echo.Address, false); err != nil {
		return err
	}
	l, err := securechannel.Listen(ctx, ln.n, secureListener, securechannel.ListenerConfig{AcceptAnyInitiator: true, Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	r.onClose(func() { l.Close() })
	rf, err := forwarding.Register(ctx, ln.n, routing.Route{ln.hub}, secureListener)
	if err != nil {
		return err
	}
	for range r.cfg.Clients {
		c := r.newClient()
		s, err := r.newLibNode(ctx)
		if err != nil {
			return err
		}
		route := routing.Route{s.hub, routing.LocalAddress(rf.RemoteAddress()), routing.LocalAddress(secureListener)}
		ch, err := securechannel.Create(ctx, s.n, route, securechannel.Config{ExpectedPeerStatic: l.StaticPublic(), Logger: r.cfg.Logger})
		if err != nil {
			return fmt.Errorf("loadgen: creating a secure channel: %w", err)
		}
		r.goroutine(func() { r.receiveLib(s.n.App(), c, false) })
		r.sender(func() { r.sendSecure(s.n, c, route, l.StaticPublic(), ch) })
	}
	return nil
}

// sendSecure is sendLib through a secure channel, replaced by a new one
// (once the messages in flight are back) before its nonces run out.
func (r *run) sendSecure(n *node.Node, c *client, route routing.Route, pin noise.Key, ch *securechannel.Channel) {
	// The last channel closes with the node, after the drain.
	sent := 0
	for {
		if sent >= channelMessages {
			if ok, err := c.acquire(1, nil); err != nil || !ok {
				return
			}
			ch.Close()
			var err error
			if ch, err = securechannel.Create(r.ctx, n, route, securechannel.Config{ExpectedPeerStatic: pin, Logger: r.cfg.Logger}); err != nil {
				r.fail("secure channel", err)
				return
			}
			sent = 0
		}
		ok, err := c.acquire(c.inflight, nil)
		if err != nil || !ok {
			return
		}
		to := routing.Route{ch.Address(), echoService}
		if err := n.Send(r.ctx, to, stamped(r.cfg.Size, r.now())); err != nil {
			r.fail("send", err)
			return
		}
		sent++
		c.sent.Add(1)
	}
}
