package node

import (
	"context"

	"github.com/ockamhub/ockamhub/routing"
)

// Worker handles the messages delivered to its addresses. HandleMessage is
// called from the worker's own goroutine, one message at a time (or, for a
// worker started with WorkerConfig.Inline, in each sender's goroutine,
// possibly concurrently); s sends from the worker's primary address. A returned error is logged and the
// worker carries on with its next message (as Rust workers do).
type Worker interface {
	HandleMessage(ctx context.Context, s Sender, m *Message) error
}

// HandlerFunc adapts a function to the Worker interface.
type HandlerFunc func(ctx context.Context, s Sender, m *Message) error

// HandleMessage calls f.
func (f HandlerFunc) HandleMessage(ctx context.Context, s Sender, m *Message) error {
	return f(ctx, s, m)
}

// Initializer is implemented by workers with a start hook. Initialize runs
// in the worker's goroutine before its first message; if it fails, the
// worker is not started and StartWorker returns the error.
type Initializer interface {
	Initialize(ctx context.Context, s Sender) error
}

// Shutdowner is implemented by workers with a stop hook. Shutdown runs in
// the worker's goroutine after its last message, when the worker is stopped
// or the node closes. For an Inline worker it runs in the goroutine that
// stops it, possibly while a sender is still in HandleMessage; it must not
// block.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Sender is how a worker or mailbox sends: from its own address, through its
// node. Implementations are safe for concurrent use.
type Sender interface {
	// Address returns the primary address messages are sent from.
	Address() routing.Address
	// Send BARE-encodes v (or takes a Raw as is) and routes it to route,
	// with a return route of [Address()].
	Send(ctx context.Context, route routing.Route, v any) error
	// SendFrom is Send with a return route of [from]. It is meant for a
	// worker with several addresses choosing which one replies come to;
	// the node does not check that from belongs to the sender.
	SendFrom(ctx context.Context, from routing.Address, route routing.Route, v any) error
	// Forward routes an existing transport message as it is.
	Forward(ctx context.Context, m routing.TransportMessage) error
	// Node returns the node, to start workers or open mailboxes.
	Node() *Node
}

// WorkerConfig configures a worker started with StartWorkerConfig.
// The zero value starts a worker at one random address.
type WorkerConfig struct {
	// Addresses are the local addresses the worker answers at; the first is
	// its primary address. An empty string is replaced by a random 32-hex
	// address. No addresses means one random address.
	Addresses []string
	// MailboxSize bounds the messages waiting for the worker; 0 means the
	// node's default. A sender blocks while the mailbox is full, until its
	// context ends.
	MailboxSize int
	// Inline runs HandleMessage in the sender's goroutine instead of the
	// worker's own, with no mailbox. It is for stateless relays that never
	// block (forwarders); the handler must be safe for concurrent use, and
	// Initializer/Shutdowner still run once. The *Message an inline worker
	// is given is valid only until HandleMessage returns (it is reused):
	// keep what it holds (its routes, its payload), not the pointer.
	Inline bool
}
