package node

import (
	"context"
	"fmt"

	"github.com/ockamhub/ockamhub/routing"
)

// Mailbox is a local address whose messages a program pulls with Receive
// instead of handling them in a worker, like a Rust Context. It is safe for
// concurrent use. Close unregisters it.
type Mailbox struct {
	e *entry
}

// OpenMailbox registers a mailbox at addr ("" for a random address).
func (n *Node) OpenMailbox(addr string) (*Mailbox, error) {
	if addr == "" {
		addr = RandomAddress(16)
	}
	e := &entry{
		node:    n,
		addrs:   []routing.Address{routing.LocalAddress(addr)},
		mailbox: make(chan *Message, n.cfg.MailboxSize),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := n.register(e, true); err != nil {
		return nil, err
	}
	go func() {
		defer n.wg.Done()
		<-e.quit
		n.unregister(e)
		close(e.done)
	}()
	return &Mailbox{e: e}, nil
}

// Address returns the mailbox's address.
func (mb *Mailbox) Address() routing.Address { return mb.e.addrs[0] }

// Node returns the node the mailbox belongs to.
func (mb *Mailbox) Node() *Node { return mb.e.node }

// Send BARE-encodes v and sends it to route from the mailbox's address.
func (mb *Mailbox) Send(ctx context.Context, route routing.Route, v any) error {
	return mb.e.Send(ctx, route, v)
}

// SendFrom is Send with another return address.
func (mb *Mailbox) SendFrom(ctx context.Context, from routing.Address, route routing.Route, v any) error {
	return mb.e.SendFrom(ctx, from, route, v)
}

// Forward routes an existing transport message as it is.
func (mb *Mailbox) Forward(ctx context.Context, m routing.TransportMessage) error {
	return mb.e.Forward(ctx, m)
}

// Receive waits for the next message, until ctx ends or the mailbox closes.
func (mb *Mailbox) Receive(ctx context.Context) (*Message, error) {
	select {
	case m := <-mb.e.mailbox:
		return m, nil
	default:
	}
	select {
	case m := <-mb.e.mailbox:
		return m, nil
	case <-mb.e.quit:
		return nil, fmt.Errorf("node: mailbox %s: %w", mb.e.addrs[0], ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close unregisters the mailbox; pending and later Receives return ErrClosed.
func (mb *Mailbox) Close() error {
	mb.e.stop()
	<-mb.e.done
	return nil
}

var _ Sender = (*Mailbox)(nil)
