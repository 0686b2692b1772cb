package loadgen

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// libNode is a node of the library with a TCP connection to the hub.
type libNode struct {
	n   *node.Node
	tr  *tcp.Transport
	hub routing.Address // 1#HOST:PORT
}

// newLibNode starts a node, connects it to the hub and arranges for both
// to close with the run.
func (r *run) newLibNode(ctx context.Context) (*libNode, error) {
	n := node.New(node.Config{Logger: r.cfg.Logger})
	tr, err := tcp.New(n, tcp.Config{Logger: r.cfg.Logger})
	if err != nil {
		n.Close()
		return nil, err
	}
	r.onClose(func() { tr.Close(); n.Close() })
	hub, err := tr.Connect(ctx, r.cfg.Hub)
	if err != nil {
		return nil, err
	}
	return &libNode{n: n, tr: tr, hub: hub}, nil
}

// stamped returns a new payload of size bytes stamped with ts. The library
// keeps the payload until it is written, so each message needs its own.
func stamped(size int, ts int64) node.Raw {
	p := make([]byte, size)
	binary.BigEndian.PutUint64(p, uint64(ts))
	return p
}

// librarySetup connects clients made of the library's nodes: for Echo one
// node per client sending to echo_service; for Forward and Bulk a sender
// node and a receiver node per client, the receiver registered with the
// hub's forwarding service (forwarding.Register) for its "app" mailbox.
func librarySetup(ctx context.Context, r *run) error {
	cfg := r.cfg
	for range cfg.Clients {
		c := r.newClient()
		s, err := r.newLibNode(ctx)
		if err != nil {
			return err
		}
		var route routing.Route
		switch cfg.Scenario {
		case Echo:
			route = routing.Route{s.hub, echoService}
			r.goroutine(func() { r.receiveLib(s.n.App(), c, false) })
		default: // Forward, Bulk
			rn, err := r.newLibNode(ctx)
			if err != nil {
				return err
			}
			rf, err := forwarding.Register(ctx, rn.n, routing.Route{rn.hub}, node.AppAddress)
			if err != nil {
				return err
			}
			route = routing.Route{s.hub, routing.LocalAddress(rf.RemoteAddress())}
			if cfg.Reply {
				r.goroutine(func() { r.receiveLib(rn.n.App(), c, true) })
				r.goroutine(func() { r.receiveLib(s.n.App(), c, false) })
			} else {
				r.goroutine(func() { r.receiveLib(rn.n.App(), c, false) })
			}
		}
		r.sender(func() { r.sendLib(s.n, c, route) })
	}
	return nil
}

// sendLib sends stamped payloads along route with Node.Send, the window
// permitting.
func (r *run) sendLib(n *node.Node, c *client, route routing.Route) {
	for {
		ok, err := c.acquire(c.inflight, nil)
		if err != nil || !ok {
			return
		}
		if err := n.Send(r.ctx, route, stamped(r.cfg.Size, r.now())); err != nil {
			r.fail("send", err)
			return
		}
		c.sent.Add(1)
	}
}

// receiveLib receives from mb: it completes each message, or with reply
// sends it back along its return route.
func (r *run) receiveLib(mb *node.Mailbox, c *client, reply bool) {
	for {
		m, err := mb.Receive(r.ctx)
		if err != nil {
			if r.ctx.Err() == nil {
				r.fail("receive", err)
			}
			return
		}
		if reply {
			if err := mb.Send(r.ctx, m.Return(), node.Raw(m.Payload())); err != nil {
				r.fail("reply", err)
				return
			}
			continue
		}
		ts, ok := stamp(m.Payload())
		if !ok {
			r.fail("receive", fmt.Errorf("%w: %d-byte payload", errMalformed, len(m.Payload())))
			continue
		}
		c.complete(r.now(), ts)
		c.publish(1)
	}
}
