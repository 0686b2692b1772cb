// Package hub assembles an Ockam Hub node: a node with the TCP transport,
// echo_service and forwarding_service, answering the Elixir control ping,
// with the limits a public relay needs. It knows nothing of accounts or
// HTTP; it is handed listeners.
//
// Protocol flow: see package tcp for framing and hops, package echo and
// package forwarding for the services (protocol.md §7–§9).
//
// The hub never decodes the payloads it relays, never dials out because of
// a route (a message for a TCP address with no open connection is dropped and
// counted), bounds each peer's send queue in messages and bytes (a message
// waits at most Config.TCP.QueueFullWait for room, slowing only its sender,
// then is dropped and counted), and removes each forwarder when the
// connection it was registered over closes.
package hub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// ErrClosed is returned by Serve after Shutdown or Close.
var ErrClosed = tcp.ErrClosed

// Config configures a Hub. The zero value is usable.
type Config struct {
	// Logger receives the hub's logs; nil discards.
	Logger *slog.Logger
	// TCP configures the transport. Aliases is always set (a hub names
	// connections by alias); QueueFullWait defaults to DefaultQueueFullWait.
	TCP tcp.Config
	// MaxForwardersPerConn limits the forwarders (random and named) one
	// connection may hold; 0 means DefaultMaxForwardersPerConn, negative
	// means no limit.
	MaxForwardersPerConn int
	// ForwarderIdleTimeout removes forwarders that relay nothing for this
	// long; 0 = never (they still go when their connection closes).
	ForwarderIdleTimeout time.Duration
	// MailboxSize is the node's default mailbox bound; 0 = default.
	MailboxSize int
	// StaticForwarding enables static_forwarding_service (named
	// forwarders at forward_to_NAME). Off by default: 2021 programs only
	// use forwarding_service.
	StaticForwarding bool
	// ForwarderToken, when set, must accompany every named registration.
	ForwarderToken string
	// ForwarderTokens gives names their own tokens (see
	// forwarding.StaticConfig).
	ForwarderTokens map[string]string
}

// Stats are the hub's counters.
type Stats struct {
	TCP                  tcp.Stats
	Node                 node.Stats
	Forwarders           int    // live forwarders (random and named)
	ForwardersRegistered uint64 // forwarders ever registered
	ForwardersExpired    uint64 // forwarders removed for being idle
}

// Hub is a running hub node. It is safe for concurrent use.
type Hub struct {
	node   *node.Node
	tcp    *tcp.Transport
	fwd    *forwarding.Service
	static *forwarding.StaticService // nil unless enabled
}

// New builds a hub: its node, transport and services. It listens on
// nothing until Serve is called.
func New(cfg Config) (*Hub, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := node.New(node.Config{Logger: log, ControlPing: true, NoApp: true, MailboxSize: cfg.MailboxSize})
	tcfg := cfg.TCP
	tcfg.Logger = log
	if tcfg.QueueFullWait == 0 {
		tcfg.QueueFullWait = DefaultQueueFullWait
	}
	tcfg.Aliases = true
	// The hub's workers (echo, forwarders, connection aliases) are inline
	// relays that keep no payload: large frames' memory is reused.
	tcfg.ReuseBodies = true
	tr, err := tcp.New(n, tcfg)
	if err != nil {
		n.Close()
		return nil, err
	}
	ctx := context.Background()
	if err := echo.Start(ctx, n, echo.Address, true); err != nil {
		tr.Close()
		n.Close()
		return nil, err
	}
	switch {
	case cfg.MaxForwardersPerConn == 0:
		cfg.MaxForwardersPerConn = DefaultMaxForwardersPerConn
	case cfg.MaxForwardersPerConn < 0:
		cfg.MaxForwardersPerConn = 0 // no limit, in the services' terms
	}
	fwd, err := forwarding.Start(ctx, n, forwarding.Config{
		AfterClose:       tr.AfterClose,
		MaxPerConnection: cfg.MaxForwardersPerConn,
		IdleTimeout:      cfg.ForwarderIdleTimeout,
	})
	if err != nil {
		tr.Close()
		n.Close()
		return nil, err
	}
	h := &Hub{node: n, tcp: tr, fwd: fwd}
	if cfg.StaticForwarding {
		h.static, err = forwarding.StartStatic(ctx, n, forwarding.StaticConfig{
			AfterClose:       tr.AfterClose,
			Token:            cfg.ForwarderToken,
			Tokens:           cfg.ForwarderTokens,
			MaxPerConnection: cfg.MaxForwardersPerConn,
		})
		if err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// Serve accepts connections on l until Shutdown or Close, then returns
// ErrClosed.
func (h *Hub) Serve(l net.Listener) error { return h.tcp.Serve(l) }

// Node returns the hub's node, to start more services on it. The hub's
// transport reuses the memory of large frames once they are handled
// (tcp.Config.ReuseBodies): a service started here must not keep a
// message's payload after HandleMessage returns (copy what it keeps).
func (h *Hub) Node() *node.Node { return h.node }

// Transport returns the hub's TCP transport.
func (h *Hub) Transport() *tcp.Transport { return h.tcp }

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	return Stats{
		TCP:                  h.tcp.Stats(),
		Node:                 h.node.Stats(),
		Forwarders:           h.fwd.Forwarders() + h.staticCount(),
		ForwardersRegistered: h.fwd.Registered(),
		ForwardersExpired:    h.fwd.Expired(),
	}
}

func (h *Hub) staticCount() int {
	if h.static == nil {
		return 0
	}
	return h.static.Forwarders()
}

// Shutdown stops accepting, lets queued messages be written, closes every
// connection and stops the services; if ctx ends first it closes at once.
func (h *Hub) Shutdown(ctx context.Context) error {
	err := h.tcp.Shutdown(ctx)
	h.fwd.Close()
	h.node.Close()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close closes every connection and stops the services at once. It is
// idempotent.
func (h *Hub) Close() error {
	h.tcp.Close()
	h.fwd.Close()
	return h.node.Close()
}

// DefaultMaxForwardersPerConn bounds the forwarders one connection may
// register: a node registers one per worker it exposes.
const DefaultMaxForwardersPerConn = 64

// DefaultQueueFullWait is how long a hub lets a message wait for room in
// the destination connection's full send queue before dropping it.
const DefaultQueueFullWait = time.Second

// ShutdownTimeout is a sensible budget for Shutdown in programs.
const ShutdownTimeout = 10 * time.Second
