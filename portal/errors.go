package portal

import "errors"

// Sentinel errors, compared with errors.Is.
var (
	// ErrClosed is returned by Serve after Close or Shutdown.
	ErrClosed = errors.New("portal: closed")
	// ErrUnknownTag means a G3 portal message has a variant index the
	// receiver does not know (≥ 4, or an extension the peer did not offer).
	ErrUnknownTag = errors.New("portal: unknown message tag")
	// ErrShort means a portal message ends before its body does.
	ErrShort = errors.New("portal: message too short")
	// ErrHandshake means the first message of a portal was not the one the
	// protocol expects (a Ping at an outlet, a Pong at an inlet).
	ErrHandshake = errors.New("portal: unexpected handshake message")
	// ErrUnreachable means the outlet could not connect to its target: the
	// peer answered Pong then Disconnect.
	ErrUnreachable = errors.New("portal: target unreachable")
	// ErrLost means a Go peer detected missing bytes (a gap in the stream
	// offsets): the stream was closed rather than delivered corrupted.
	ErrLost = errors.New("portal: bytes lost in transit")
	// ErrAborted means the peer closed the portal because of an error on
	// its side (extension peers say so in their Disconnect).
	ErrAborted = errors.New("portal: aborted by the peer")
	// ErrFlowControl means a peer sent more than the window it was granted.
	ErrFlowControl = errors.New("portal: peer exceeded its flow-control window")
	// ErrBudget means the secure channel carrying the portal has (almost)
	// used its 65535 messages: the portal closed rather than let the nonce
	// wrap.
	ErrBudget = errors.New("portal: secure channel message budget exhausted")
	// ErrTimeout means the peer did not answer the handshake in time.
	ErrTimeout = errors.New("portal: handshake timed out")
	// ErrConnLost means the TCP connection a portal's route starts with
	// closed (Options.ConnDone).
	ErrConnLost = errors.New("portal: connection to the peer lost")
	// ErrLimit means the outlet refused a connection over its limit.
	ErrLimit = errors.New("portal: too many connections")
)
