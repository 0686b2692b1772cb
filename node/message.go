package node

import (
	"context"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/routing"
)

// Message is a message delivered to a worker or mailbox: a transport message
// and the local address it arrived at.
//
// A Message is read-only and safe to read from several goroutines. Its
// payload may share memory with the buffer it was read from; it stays valid
// for as long as the Message is referenced.
type Message struct {
	tm     routing.TransportMessage
	at     routing.Address
	pooled bool // lent to an inline worker, reused once it returns

	exclusive bool     // the payload is the worker's alone (ExclusivePayload)
	room      *roomCtx // the memory the sender gave up with the payload (PayloadRoom)
}

// NewMessage returns a message as it would be delivered at address at. It is
// useful in tests of workers.
func NewMessage(at routing.Address, tm routing.TransportMessage) *Message {
	return &Message{tm: tm, at: at}
}

// Onward returns the onward route. Its head is the address the message was
// delivered to: local delivery does not pop it (protocol.md §6.1).
func (m *Message) Onward() routing.Route { return m.tm.Onward }

// Return returns the return route: the route a reply takes.
func (m *Message) Return() routing.Route { return m.tm.Return }

// Sender returns the original sender: the last address of the return route.
func (m *Message) Sender() routing.Address {
	a, _ := m.tm.Return.Recipient()
	return a
}

// Address returns the local address the message was delivered to.
func (m *Message) Address() routing.Address { return m.at }

// Payload returns the raw payload bytes. The caller must not modify them.
func (m *Message) Payload() []byte { return m.tm.Payload }

// Transport returns the whole transport message, for workers that relay it.
func (m *Message) Transport() routing.TransportMessage { return m.tm }

// Decode BARE-decodes the payload into v, which must be a pointer.
func (m *Message) Decode(v any) error { return bare.Unmarshal(m.tm.Payload, v) }

// Body decodes the payload of m as a T, e.g. node.Body[string](m).
func Body[T any](m *Message) (T, error) {
	var v T
	err := m.Decode(&v)
	return v, err
}

// Receiver is anything messages can be received from: a *Mailbox, or a
// *Node (its "app" mailbox).
type Receiver interface {
	Receive(ctx context.Context) (*Message, error)
}

// ReceiveBody receives the next message from r and decodes its payload as a
// T, like Rust's ctx.receive::<T>(). It returns the message too, for its
// routes.
func ReceiveBody[T any](ctx context.Context, r Receiver) (T, *Message, error) {
	var v T
	m, err := r.Receive(ctx)
	if err != nil {
		return v, nil, err
	}
	err = m.Decode(&v)
	return v, m, err
}

// Raw is a payload sent as is, without BARE encoding. Relays use it to pass
// on bytes they do not interpret.
type Raw []byte

// encodePayload returns the wire payload for an application value.
func encodePayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case Raw:
		return p, nil
	case nil:
		return nil, nil
	}
	return bare.Marshal(v)
}
