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
//
// Among strangers: forwarder and connection aliases carry 64 random bits;
// a connection that keeps sending to addresses that do not exist is
// slowed, then closed; a node admits only the networks of its allow-list
// (empty: everyone); a named forwarder held by a live registration is never
// given to another connection without its token; the Rust heartbeat frame
// is dropped silently. Each refusal is counted in Stats.
package hub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
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
	// connections by alias); QueueFullWait defaults to DefaultQueueFullWait;
	// probe damping is on (ProbeBurst 0 means tcp.DefaultProbeBurst and the
	// other Probe defaults, negative turns it off). A Budget shared by the
	// hubs of a process bounds their connections together.
	TCP tcp.Config
	// MaxForwardersPerConn limits the forwarders (random and named) one
	// connection may hold; 0 means DefaultMaxForwardersPerConn, negative
	// means no limit.
	MaxForwardersPerConn int
	// ForwarderIdleTimeout removes forwarders that relay nothing for this
	// long; 0 = never (they still go when their connection closes).
	ForwarderIdleTimeout time.Duration
	// NoCutThrough turns off the cut-through of large frames relayed by
	// forwarders (tcp.Config.CutThrough, which the hub sets otherwise).
	NoCutThrough bool
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
	// Allow lists the source networks admitted; empty admits everyone (the
	// 2021 behaviour). When set, it replaces TCP.Allow.
	Allow []netip.Prefix
	// NamedForwarding: per-node static forwarding settings (overrides
	// StaticForwarding/ForwarderToken(s) when Enabled).
	NamedForwarding NamedForwarding
}

// NamedForwarding is a node's static forwarding (forward_to_NAME) settings.
type NamedForwarding struct {
	Enabled bool
	// TokenHashes maps a name to the SHA-256 of the token its registrations
	// must carry. A name without a token may be registered by anyone while
	// no live registration holds it; a held name is never given to another
	// connection (with its token, the holder may move it).
	TokenHashes map[string][32]byte
}

// Stats are the hub's counters.
type Stats struct {
	TCP                  tcp.Stats
	Node                 node.Stats
	Forwarders           int    // live forwarders (random and named)
	ForwardersRegistered uint64 // forwarders ever registered
	ForwardersExpired    uint64 // forwarders removed for being idle
	// Registrations refused, by reason: over the per-connection cap
	// (random and named), a name held by another connection, a wrong or
	// missing token, an invalid name or route.
	RefusedOverCap, RefusedInUse, RefusedUnauthorized, RefusedInvalid uint64
}

// Hub is a running hub node. It is safe for concurrent use.
type Hub struct {
	node *node.Node
	tcp  *tcp.Transport
	fwd  *forwarding.Service
	cfg  Config // the static forwarding settings given to New
	log  *slog.Logger

	mu       sync.Mutex                // serialises SetNamedForwarding, guards the fields below
	static   *forwarding.StaticService // nil unless enabled
	named    NamedForwarding
	retired  forwarding.StaticStats // counters of static services stopped
	isClosed bool
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
	// The forwarders are route rewriters (node.RouteRewriter): large
	// frames through them are spliced from socket to socket on Linux.
	tcfg.CutThrough = !cfg.NoCutThrough
	if len(cfg.Allow) > 0 {
		tcfg.Allow = cfg.Allow
	}
	switch {
	case tcfg.ProbeBurst == 0:
		tcfg.ProbeBurst = tcp.DefaultProbeBurst
	case tcfg.ProbeBurst < 0:
		tcfg.ProbeBurst = 0 // off
	}
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
		Logger:           log,
	})
	if err != nil {
		tr.Close()
		n.Close()
		return nil, err
	}
	h := &Hub{node: n, tcp: tr, fwd: fwd, cfg: cfg, log: log}
	if err := h.setNamedForwarding(cfg.NamedForwarding); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// SetAllow replaces the allow-list: new connections are checked at accept;
// existing connections from a network no longer allowed are closed. An
// empty list admits everyone. Safe for concurrent use.
func (h *Hub) SetAllow(allow []netip.Prefix) { h.tcp.SetAllow(allow) }

// SetNamedForwarding replaces the named-forwarding settings; they apply to
// new registrations at once. Enabled starts static_forwarding_service (if
// it is not running) with nf's tokens; not Enabled falls back to the
// Config's StaticForwarding and tokens, and when those leave it off, stops
// the service and removes every named forwarder. Names already held stay
// where they are while the service keeps running. Safe for concurrent use;
// on a closed hub it does nothing.
func (h *Hub) SetNamedForwarding(nf NamedForwarding) {
	if err := h.setNamedForwarding(nf); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, node.ErrClosed) {
		h.log.Error("named forwarding settings not applied", "err", err)
	}
}

func (h *Hub) setNamedForwarding(nf NamedForwarding) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isClosed {
		return ErrClosed
	}
	var hashes map[string][32]byte
	if nf.Enabled {
		hashes = nf.TokenHashes
		if hashes == nil {
			hashes = map[string][32]byte{} // no tokens: non-nil selects the per-node rules
		}
	}
	h.named = nf
	on := nf.Enabled || h.cfg.StaticForwarding
	switch {
	case on && h.static != nil:
		h.static.SetTokenHashes(hashes)
	case on:
		s, err := forwarding.StartStatic(context.Background(), h.node, forwarding.StaticConfig{
			AfterClose:       h.tcp.AfterClose,
			Token:            h.cfg.ForwarderToken,
			Tokens:           h.cfg.ForwarderTokens,
			TokenHashes:      hashes,
			MaxPerConnection: max(h.cfg.MaxForwardersPerConn, 0),
			Logger:           h.log,
		})
		if err != nil {
			return err
		}
		h.static = s
	case h.static != nil:
		h.stopStatic()
	}
	return nil
}

// stopStatic stops the static service, keeping its counters; h.mu is held.
func (h *Hub) stopStatic() {
	st := h.static.Stats()
	h.static.Close()
	h.static = nil
	h.retired.RefusedInUse += st.RefusedInUse
	h.retired.RefusedUnauthorized += st.RefusedUnauthorized
	h.retired.RefusedOverCap += st.RefusedOverCap
	h.retired.RefusedInvalid += st.RefusedInvalid
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
	st := h.staticStats()
	return Stats{
		TCP:                  h.tcp.Stats(),
		Node:                 h.node.Stats(),
		Forwarders:           h.fwd.Forwarders() + st.Forwarders,
		ForwardersRegistered: h.fwd.Registered(),
		ForwardersExpired:    h.fwd.Expired(),
		RefusedOverCap:       h.fwd.RefusedOverCap() + st.RefusedOverCap,
		RefusedInUse:         st.RefusedInUse,
		RefusedUnauthorized:  st.RefusedUnauthorized,
		RefusedInvalid:       st.RefusedInvalid,
	}
}

// staticStats sums the counters of the static services, past and present.
func (h *Hub) staticStats() forwarding.StaticStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.retired
	if h.static != nil {
		cur := h.static.Stats()
		st.Forwarders = cur.Forwarders
		st.RefusedInUse += cur.RefusedInUse
		st.RefusedUnauthorized += cur.RefusedUnauthorized
		st.RefusedOverCap += cur.RefusedOverCap
		st.RefusedInvalid += cur.RefusedInvalid
	}
	return st
}

// Shutdown stops accepting, lets queued messages be written, closes every
// connection and stops the services; if ctx ends first it closes at once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.markClosed()
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
	h.markClosed()
	h.tcp.Close()
	h.fwd.Close()
	return h.node.Close()
}

// markClosed makes SetNamedForwarding refuse from now on.
func (h *Hub) markClosed() {
	h.mu.Lock()
	h.isClosed = true
	h.mu.Unlock()
}

// DefaultMaxForwardersPerConn bounds the forwarders one connection may
// register: a node registers one per worker it exposes.
const DefaultMaxForwardersPerConn = 64

// DefaultQueueFullWait is how long a hub lets a message wait for room in
// the destination connection's full send queue before dropping it.
const DefaultQueueFullWait = time.Second

// ShutdownTimeout is a sensible budget for Shutdown in programs.
const ShutdownTimeout = 10 * time.Second
