package tcp

import (
	"errors"
	"fmt"
)

// Sentinel errors, compared with errors.Is.
var (
	// ErrClosed is returned by Serve after Close or Shutdown, and by sends
	// on a closed transport or connection.
	ErrClosed = errors.New("tcp: transport closed")
	// ErrFrameTooLarge means a message does not fit in one frame.
	ErrFrameTooLarge = errors.New("tcp: message larger than a frame")
	// ErrEmptyFrame means a zero-length frame was read (no 2021 peer sends
	// one; later Ockam versions used them as heartbeats).
	ErrEmptyFrame = errors.New("tcp: empty frame")
	// ErrNoConnection means a route named a type-1 address with no open
	// connection. The transport never dials on a route's behalf.
	ErrNoConnection = errors.New("tcp: no connection to address")
	// ErrNothingAfterHop means a route ended at a TCP hop: the peer would
	// receive a message with an empty onward route, which 2021 Rust nodes
	// cannot handle. Name a worker on the peer after the hop.
	ErrNothingAfterHop = errors.New("tcp: nothing to route to after the TCP hop")
	// ErrQueueFull means a connection's send queue was full.
	ErrQueueFull = errors.New("tcp: send queue full")
	// ErrTooManyConns means the connection limit was reached.
	ErrTooManyConns = errors.New("tcp: too many connections")
	// ErrBudget means the process-wide connection budget was spent.
	ErrBudget = errors.New("tcp: connection budget spent")
	// ErrNotAllowed means a peer's address is outside the allow-list.
	ErrNotAllowed = errors.New("tcp: source address not allowed")
	// ErrProbing means a connection kept sending to addresses that do not
	// exist, past the allowance (Config.ProbeBurst), and was closed.
	ErrProbing = errors.New("tcp: too many messages to nonexistent addresses")
)

// ConnError reports a failure on one connection, with the peer's address.
type ConnError struct {
	Peer string
	Err  error
}

func (e *ConnError) Error() string { return fmt.Sprintf("tcp: connection %s: %v", e.Peer, e.Err) }

// Unwrap returns the underlying error.
func (e *ConnError) Unwrap() error { return e.Err }
