package securechannel

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// Defaults for ListenerConfig fields left zero.
const (
	// DefaultHandshakeTimeout is the time an initiator has to finish the
	// handshake (M3) after its M1: short, so half-open handshakes go soon.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxPendingHandshakes bounds half-open handshakes in all.
	DefaultMaxPendingHandshakes = 256
	// DefaultMaxPendingPerSource bounds the half-open handshakes of one
	// source (the M1's return route without its last address: one hub
	// connection, or one TCP connection); a source over it loses its own
	// oldest ones, never another source's.
	DefaultMaxPendingPerSource = 16
	// DefaultIdleTimeout stops an established channel that has carried no
	// data message for this long; the 2021 protocol has no close message.
	DefaultIdleTimeout = 15 * time.Minute
	// DefaultMaxChannels bounds the established channels of a listener;
	// when full, the least recently active one of the source holding the
	// most makes room for a new one.
	DefaultMaxChannels = 4096
)

// ListenerConfig configures a Listener. Listen only reads it, so one may be
// shared.
//
// A ListenerConfig must say which initiators to admit, or Listen fails with
// ErrNoPeerPolicy: an allow-list (Authorized, for example
// AllowIdentities(ids...) or AllowIdentities of ReadAllowFile), or
// AcceptAnyInitiator, the 2021 behaviour that the 2021 Rust programs (which
// use a fresh random key per channel) need. The other fields' zero values
// are usable: one fresh static key pair for the listener and the defaults
// above.
//
//	kp, _ := securechannel.LoadOrCreateKey(keyPath) // print securechannel.IdentityOf(kp)
//	l, err := securechannel.Listen(ctx, n, "secure_channel", securechannel.ListenerConfig{
//		StaticKeyPair: kp, Authorized: securechannel.AllowIdentities(allowed...)})
type ListenerConfig struct {
	// StaticKeyPair is the key pair every responder of this listener proves
	// in M2; initiators pin its public key (IdentityOf, or
	// Listener.Identity). The zero value means one fresh key pair for the
	// listener's lifetime, which no initiator can pin in advance. Use
	// LoadOrCreateKey to keep it across restarts.
	StaticKeyPair noise.KeyPair

	// Authorized, when not nil, decides after M3 whether the initiator's
	// static public key may use the listener. A refused initiator's
	// responder is stopped, counted as Unauthorized and logged (at most
	// once a second); no data flows. It is called from the responder's
	// worker goroutine and must be safe for concurrent use.
	// AllowIdentities builds one from a list.
	Authorized func(peer noise.Key) bool

	// AcceptAnyInitiator admits every initiator when Authorized is nil: the
	// channels are encrypted, but the listener does not know who is
	// calling. It is what the 2021 Rust initiators need.
	AcceptAnyInitiator bool

	// HandshakeTimeout stops a responder whose initiator has not sent a
	// valid M3 this long after M1, so half-open handshakes cannot pile up;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// IdleTimeout stops an established responder channel that has carried
	// no data message, in either direction, for this long, and counts it in
	// IdleTimeouts. 0 means DefaultIdleTimeout; negative means never, as in
	// Rust.
	IdleTimeout time.Duration

	// MaxChannels bounds the established responder channels: when a new
	// one would exceed it, the least recently active one of the source
	// holding the most (compared hop by hop, as for MaxPendingHandshakes:
	// one initiator opening channel after channel displaces only its own)
	// is closed and counted in Evicted. 0 means DefaultMaxChannels;
	// negative means no limit.
	MaxChannels int

	// MaxPendingHandshakes bounds the responders waiting for M3. When full,
	// a new first message takes the slot of the oldest pending handshake of
	// the source holding the most, which is counted as Overloaded: junk first
	// messages from one source cannot lock out another. Sources are compared
	// hop by hop from the listener (the connection, then a hub's alias of the
	// sender's connection, …), so a sender that varies the hops it writes
	// itself still competes as its connection. 0 means
	// DefaultMaxPendingHandshakes.
	MaxPendingHandshakes int

	// MaxPendingPerSource bounds the responders waiting for M3 for one
	// source (the first message's return route without its last address);
	// a source at the bound loses its own oldest. 0 means
	// DefaultMaxPendingPerSource.
	MaxPendingPerSource int

	// Logger receives debug logs of handshakes and dropped messages, and
	// rate-limited warnings of refused initiators; nil uses the node's
	// logger.
	Logger *slog.Logger

	// ephemeral replaces the responders' random ephemeral key pair, in
	// tests only (see export_test.go).
	ephemeral *noise.KeyPair
}

// AllowKeys returns an authorization function for ListenerConfig.Authorized
// that accepts exactly the given static public keys. The result is safe for
// concurrent use.
func AllowKeys(keys ...noise.Key) func(noise.Key) bool {
	set := make(map[noise.Key]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	return func(k noise.Key) bool {
		_, ok := set[k]
		return ok
	}
}

// Listener is a secure channel listener: a worker at a well-known address
// ("secure_channel_listener" in the Rust examples 05–09, "secure_channel" in
// example 12) that starts a responder Channel for every first handshake
// message it receives (protocol.md §10.3).
//
// Create one with Listen; the zero value is not usable. Its methods are safe
// for concurrent use.
type Listener struct {
	node   *node.Node
	addr   routing.Address
	cfg    ListenerConfig
	static noise.KeyPair
	log    *slog.Logger
	stats  counters

	mu       sync.Mutex
	channels map[*Channel]bool            // every live responder: true once established
	byLocal  map[routing.Address]*Channel // established responders by address_local
	pending  map[*Channel]*pendingInfo    // responders not yet established
	bySrc    map[string][]*Channel        // pending responders by source, oldest first
	seq      uint64                       // orders pending responders by arrival
	closed   bool

	refusedMu      sync.Mutex
	refusedLogged  time.Time // when a refusal was last logged
	refusedSkipped int       // refusals not logged since
}

// Listen starts a listener at the local address addr on n.
func Listen(ctx context.Context, n *node.Node, addr string, cfg ListenerConfig) (*Listener, error) {
	if cfg.Authorized == nil && !cfg.AcceptAnyInitiator {
		return nil, fmt.Errorf("securechannel: listen: %w", ErrNoPeerPolicy)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = DefaultMaxPendingHandshakes
	}
	if cfg.MaxPendingPerSource <= 0 {
		cfg.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxChannels == 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	static := cfg.StaticKeyPair
	if static == (noise.KeyPair{}) {
		var err error
		if static, err = noise.GenerateKeyPair(); err != nil {
			return nil, fmt.Errorf("securechannel: %w", err)
		}
	} else if _, err := noise.NewHandshake(noise.Config{StaticKeyPair: static}); err != nil {
		return nil, fmt.Errorf("securechannel: listener key: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = n.Logger()
	}
	l := &Listener{
		node:     n,
		cfg:      cfg,
		static:   static,
		log:      log,
		channels: make(map[*Channel]bool),
		byLocal:  make(map[routing.Address]*Channel),
		pending:  make(map[*Channel]*pendingInfo),
		bySrc:    make(map[string][]*Channel),
	}
	addrs, err := n.StartWorkerConfig(ctx, node.HandlerFunc(l.handle), node.WorkerConfig{Addresses: []string{addr}})
	if err != nil {
		return nil, fmt.Errorf("securechannel: starting listener: %w", err)
	}
	l.addr = addrs[0]
	return l, nil
}

// String describes l by its address and identity. A Listener holds its
// private key in unexported fields, which fmt would print field by field
// without asking the key pair to redact itself; Format and LogValue use
// String, so no formatting of a Listener prints the key.
func (l *Listener) String() string {
	return "securechannel.Listener{address: " + l.addr.String() + ", identity: " + l.Identity().String() + "}"
}

// GoString is String, for %#v.
func (l *Listener) GoString() string { return l.String() }

// Format prints String for every verb.
func (l *Listener) Format(f fmt.State, verb rune) { fmt.Fprint(f, l.String()) }

// LogValue implements slog.LogValuer with String.
func (l *Listener) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Address returns the listener's address; initiators create channels to a
// route ending there.
func (l *Listener) Address() routing.Address { return l.addr }

// StaticPublic returns the static public key the listener's responders
// prove, for initiators to pin.
func (l *Listener) StaticPublic() noise.Key { return l.static.Public }

// Identity returns StaticPublic as an Identity, to print for initiators.
func (l *Listener) Identity() Identity { return Identity(l.static.Public) }

// Stats returns the counters of the listener and of every responder it has
// created, added up.
func (l *Listener) Stats() Stats { return l.stats.snapshot() }

// Counts returns the number of established and of pending (half-open)
// responder channels.
func (l *Listener) Counts() (established, pending int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byLocal), len(l.pending)
}

// Channel returns the established responder channel whose address_local is
// addr. A worker that receives a message through a channel finds that
// address at the head of the message's return route, so it can look up the
// channel, and its PeerStatic, to decide what the sender may do.
func (l *Listener) Channel(addr routing.Address) (*Channel, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.byLocal[addr]
	return ch, ok
}

// Close stops the listener and every channel it created. It is idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	chans := make([]*Channel, 0, len(l.channels))
	for ch := range l.channels {
		chans = append(chans, ch)
	}
	l.mu.Unlock()
	l.node.StopWorker(context.Background(), l.addr.Value)
	for _, ch := range chans {
		ch.Close()
	}
	return nil
}

// maxSourceDepth bounds how many hops of a return route make its source.
// The hops beyond it are merged into one source, which only makes a sender
// who varies them share its slots, and keeps the bookkeeping small however
// long a route the sender writes.
const maxSourceDepth = 8

// pendingInfo is the bookkeeping of a pending responder.
type pendingInfo struct {
	src string // Channel.source as text: the key of bySrc
}

// sourceOf is the source of a first message for the pending quotas: its
// return route without the initiator's own (random, per channel) address,
// at most maxSourceDepth hops. Through a hub, it starts with the hub's
// connection and the hub's alias of the initiator's connection; those hops
// were prepended by the transports, but the rest is whatever the sender
// wrote, so a source is only as trustworthy as its first hops: see
// fullestLocked.
func sourceOf(ret routing.Route) []routing.Address {
	path := ret[:len(ret)-1]
	if len(path) > maxSourceDepth {
		path = path[:maxSourceDepth]
	}
	return append([]routing.Address(nil), path...)
}

// handle is the listener worker: for each first handshake message it starts
// a responder and hands M1 to it (protocol.md §10.3 step 2).
func (l *Listener) handle(ctx context.Context, s node.Sender, m *node.Message) error {
	// Ockam compatibility: both 2021 wrappings of M1 are accepted, whichever
	// the initiator's Rust version sends (§10.4). The struct form's callback
	// address is ignored: SecureChannel::create always sends None.
	m1, _, _, err := parseListenerMessage(m.Payload())
	if err != nil {
		l.stats.inc(statHandshakeFailures)
		l.log.Debug("securechannel: dropped first message", "listener", l.addr.Value, "from", m.Return().String(), "err", err)
		return nil
	}
	if len(m.Return()) == 0 {
		l.stats.inc(statHandshakeFailures)
		l.log.Debug("securechannel: dropped first message with no return route", "listener", l.addr.Value)
		return nil
	}
	ch, err := l.startResponder(ctx, sourceOf(m.Return()))
	if err != nil {
		return err
	}
	// Re-address M1 to the responder, keeping the original return route so
	// that it can answer the initiator's address_remote.
	return s.Forward(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  routing.Route{ch.remote},
		Return:  m.Return(),
		Payload: appendVec(nil, m1),
	})
}

// takePendingSlot registers ch as a pending responder of src, evicting
// another pending responder if a quota is reached, and returns the one
// evicted (to be closed by the caller, outside the lock) or nil.
func (l *Listener) takePendingSlotLocked(ch *Channel, path []routing.Address) *Channel {
	src := routing.Route(path).String()
	var victim *Channel
	if q := l.bySrc[src]; len(q) >= l.cfg.MaxPendingPerSource {
		victim = q[0]
	} else if len(l.pending) >= l.cfg.MaxPendingHandshakes {
		victim = l.fullestLocked()
	}
	if victim != nil {
		l.removePendingLocked(victim)
	}
	l.seq++
	ch.source, ch.seq = path, l.seq
	l.pending[ch] = &pendingInfo{src: src}
	l.bySrc[src] = append(l.bySrc[src], ch)
	l.channels[ch] = false
	return victim
}

// fullestLocked chooses the pending responder to displace when every slot
// is taken: see fairVictim; among equals, the oldest goes.
func (l *Listener) fullestLocked() *Channel {
	cands := make([]*Channel, 0, len(l.pending))
	for ch := range l.pending {
		cands = append(cands, ch)
	}
	return fairVictim(cands, func(a, b *Channel) bool { return a.seq < b.seq })
}

// fairVictim chooses which of cands (not empty) to displace: the source
// holding the most pays, so a flood from one source never displaces a
// genuine initiator elsewhere.
//
// Sources are compared hop by hop from the listener's side, because only
// the first hops of a return route were written by transports (the
// connection, then a hub's alias of the initiator's connection); the rest
// is the sender's choice, and one sender can make each of its messages
// look like a new source. So, starting with every candidate, keep those
// that share the most common next hop, one hop at a time (sources that end
// at this hop count as one more group); a sender varying later hops
// therefore shares the group of its connection. A tie between groups goes
// against the group holding the first candidate by before; within the last
// group, the first by before goes.
func fairVictim(cands []*Channel, before func(a, b *Channel) bool) *Channel {
	type group struct {
		members []*Channel
		first   *Channel
	}
	add := func(g *group, ch *Channel) {
		if g.first == nil || before(ch, g.first) {
			g.first = ch
		}
		g.members = append(g.members, ch)
	}
	for depth := 0; len(cands) > 1 && depth <= maxSourceDepth; depth++ {
		if sameHop(cands, depth) {
			continue // one group: nothing to choose at this hop
		}
		var ended group
		groups := make(map[routing.Address]*group)
		for _, ch := range cands {
			if depth >= len(ch.source) {
				add(&ended, ch)
				continue
			}
			g := groups[ch.source[depth]]
			if g == nil {
				g = new(group)
				groups[ch.source[depth]] = g
			}
			add(g, ch)
		}
		best := &ended
		for _, g := range groups {
			if len(g.members) > len(best.members) || (len(g.members) == len(best.members) && before(g.first, best.first)) {
				best = g
			}
		}
		cands = best.members
		if best == &ended {
			break
		}
	}
	victim := cands[0]
	for _, ch := range cands[1:] {
		if before(ch, victim) {
			victim = ch
		}
	}
	return victim
}

// sameHop reports whether every candidate's source goes on with the same
// hop at depth.
func sameHop(cands []*Channel, depth int) bool {
	if depth >= len(cands[0].source) {
		return false
	}
	hop := cands[0].source[depth]
	for _, ch := range cands[1:] {
		if depth >= len(ch.source) || ch.source[depth] != hop {
			return false
		}
	}
	return true
}

// removePendingLocked forgets a pending responder; it reports whether ch
// was pending.
func (l *Listener) removePendingLocked(ch *Channel) bool {
	info, ok := l.pending[ch]
	if !ok {
		return false
	}
	src := info.src
	delete(l.pending, ch)
	q := l.bySrc[src]
	for i, c := range q {
		if c == ch {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(l.bySrc, src)
	} else {
		l.bySrc[src] = q
	}
	return true
}

// establishLocked moves a pending responder to the established ones and
// returns the established channel to close (see fairVictim) if
// MaxChannels is exceeded. It returns ok == false when ch was evicted
// meanwhile.
func (l *Listener) establishLocked(ch *Channel) (victim *Channel, ok bool) {
	if !l.removePendingLocked(ch) || l.closed {
		return nil, false
	}
	if l.cfg.MaxChannels > 0 && len(l.byLocal) >= l.cfg.MaxChannels {
		// As for pending handshakes, the source holding the most channels
		// gives way (fairVictim), and within it the least recently active.
		cands := make([]*Channel, 0, len(l.byLocal))
		for _, c := range l.byLocal {
			cands = append(cands, c)
		}
		victim = fairVictim(cands, func(a, b *Channel) bool { return a.lastActive.Load() < b.lastActive.Load() })
		delete(l.byLocal, victim.local)
		delete(l.channels, victim)
	}
	l.channels[ch] = true
	l.byLocal[ch.local] = ch
	return victim, true
}

// logRefused counts and logs, at most once a second, an initiator refused
// by Authorized.
func (l *Listener) logRefused(peer noise.Key, from routing.Route) {
	l.refusedMu.Lock()
	now := time.Now()
	if now.Sub(l.refusedLogged) < time.Second {
		l.refusedSkipped++
		l.refusedMu.Unlock()
		return
	}
	skipped := l.refusedSkipped
	l.refusedLogged, l.refusedSkipped = now, 0
	l.refusedMu.Unlock()
	l.log.Warn("securechannel: refused an initiator not on the allow-list", "listener", l.addr.Value,
		"identity", Identity(peer).String(), "from", from.String(), "refused_unlogged", skipped,
		"refused_total", l.stats.v[statUnauthorized].Load())
}

// startResponder starts a responder channel for a first message from src,
// in a pending slot, with its handshake timer running. The slot is
// released when the handshake completes or the responder stops, or at once
// on error.
func (l *Listener) startResponder(ctx context.Context, src []routing.Address) (*Channel, error) {
	ch := newChannel(l.node, false, l.log, &l.stats)
	ch.authenticated = l.cfg.Authorized != nil
	ch.localStatic = l.static.Public
	hs, err := noise.NewHandshake(noise.Config{StaticKeyPair: l.static, EphemeralKeyPair: l.cfg.ephemeral})
	if err != nil {
		return nil, fmt.Errorf("securechannel: %w", err)
	}
	ep := newEndpoint(ch, hs)
	ep.authorized, ep.onRefused = l.cfg.Authorized, l.logRefused

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("securechannel: listener %s: %w", l.addr, ErrClosed)
	}
	victim := l.takePendingSlotLocked(ch, src)
	l.mu.Unlock()
	if victim != nil {
		l.stats.inc(statOverloaded)
		l.log.Debug("securechannel: too many pending handshakes; dropped the oldest", "listener", l.addr.Value, "source", routing.Route(src).String())
		go victim.Close()
	}

	timer := time.AfterFunc(l.cfg.HandshakeTimeout, func() {
		if !ch.complete.Load() {
			ch.stats.inc(statHandshakeTimeouts)
			ch.Close()
		}
	})
	var idle idleWatch
	ep.onComplete = func() {
		timer.Stop()
		l.mu.Lock()
		victim, ok := l.establishLocked(ch)
		l.mu.Unlock()
		if !ok {
			go ch.Close() // evicted or closed while finishing its handshake
			return
		}
		if victim != nil {
			l.stats.inc(statEvicted)
			go victim.Close()
		}
		if l.cfg.IdleTimeout > 0 {
			idle.start(ch, l.cfg.IdleTimeout)
		}
	}
	ep.onStop = func() {
		timer.Stop()
		idle.stop()
		l.mu.Lock()
		l.removePendingLocked(ch)
		delete(l.channels, ch)
		if l.byLocal[ch.local] == ch {
			delete(l.byLocal, ch.local)
		}
		l.mu.Unlock()
	}
	if err := ep.start(ctx); err != nil {
		ep.onStop()
		return nil, err
	}
	return ch, nil
}

// idleWatch stops an established channel that has been idle for a timeout.
// Its timer runs in its own goroutine, so it holds a lock.
type idleWatch struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
}

func (w *idleWatch) start(ch *Channel, timeout time.Duration) {
	ch.touch()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.t = time.AfterFunc(timeout, func() { w.check(ch, timeout) })
}

func (w *idleWatch) check(ch *Channel, timeout time.Duration) {
	idle := time.Since(time.Unix(0, ch.lastActive.Load()))
	w.mu.Lock()
	stopped := w.stopped
	if idle < timeout && !stopped {
		w.t.Reset(timeout - idle)
	}
	w.mu.Unlock()
	if stopped || idle < timeout {
		return
	}
	ch.stats.inc(statIdleTimeouts)
	ch.Close()
}

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.t != nil {
		w.t.Stop()
	}
}
