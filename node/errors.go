package node

import (
	"errors"
	"fmt"

	"github.com/ockamhub/ockamhub/routing"
)

// Sentinel errors, compared with errors.Is.
var (
	// ErrClosed is returned by operations on a closed node, worker or mailbox.
	ErrClosed = errors.New("node: closed")
	// ErrUnknownAddress means no worker is registered at a local address.
	ErrUnknownAddress = errors.New("node: no worker at address")
	// ErrAddressInUse means a worker is already registered at an address.
	ErrAddressInUse = errors.New("node: address already in use")
	// ErrNoTransport means no transport is registered for an address type.
	ErrNoTransport = errors.New("node: no transport for address type")
	// ErrEmptyRoute means a message has no onward route to follow.
	ErrEmptyRoute = errors.New("node: empty onward route")
	// ErrMailboxFull means a worker's mailbox stayed full until the
	// sender's context ended.
	ErrMailboxFull = errors.New("node: mailbox full")
)

// RouteError reports a message that could not be routed, with the address
// at which routing failed.
type RouteError struct {
	Addr routing.Address
	Err  error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("node: routing to %s: %v", e.Addr, e.Err)
}

// Unwrap returns the underlying error.
func (e *RouteError) Unwrap() error { return e.Err }
