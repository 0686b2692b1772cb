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
	DefaultHandshakeTimeout     = 20 * time.Second
	DefaultMaxPendingHandshakes = 256
)

// ListenerConfig configures a Listener. The zero value is usable: one fresh
// static key pair for the listener, every initiator accepted, and the
// defaults above. Listen only reads it, so one may be shared.
type ListenerConfig struct {
	// StaticKeyPair is the key pair every responder of this listener proves
	// in M2; initiators can pin its public key (Config.ExpectedPeerStatic).
	// The zero value means one fresh key pair for the listener's lifetime,
	// see Listener.StaticPublic. (Rust's 2021 listener made a fresh key per
	// channel; the wire is the same either way.) Use LoadOrCreateKey to keep
	// it across restarts.
	StaticKeyPair noise.KeyPair

	// Authorized, when not nil, decides after M3 whether the initiator's
	// static public key may use the listener. A refused initiator's
	// responder is stopped and counted as Unauthorized; no data flows. It is
	// called from the responder's worker goroutine and must be safe for
	// concurrent use. AllowKeys builds one from a list.
	Authorized func(peer noise.Key) bool

	// HandshakeTimeout stops a responder whose initiator has not sent a
	// valid M3 this long after M1, so half-open handshakes cannot pile up;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// IdleTimeout, when positive, stops an established responder channel
	// that has carried no data message, in either direction, for this long,
	// and counts it in IdleTimeouts. The 2021 protocol has no close message,
	// so without it the responder of an initiator that went away lives as
	// long as the listener. 0 means never, as in Rust.
	IdleTimeout time.Duration

	// MaxPendingHandshakes bounds the responders waiting for M3; further
	// first messages are dropped and counted as Overloaded. 0 means
	// DefaultMaxPendingHandshakes.
	MaxPendingHandshakes int

	// Logger receives debug logs of handshakes and dropped messages; nil
	// uses the node's logger.
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
	pending  int                          // responders not yet established
	closed   bool
}

// Listen starts a listener at the local address addr on n.
func Listen(ctx context.Context, n *node.Node, addr string, cfg ListenerConfig) (*Listener, error) {
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = DefaultMaxPendingHandshakes
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
	}
	addrs, err := n.StartWorkerConfig(ctx, node.HandlerFunc(l.handle), node.WorkerConfig{Addresses: []string{addr}})
	if err != nil {
		return nil, fmt.Errorf("securechannel: starting listener: %w", err)
	}
	l.addr = addrs[0]
	return l, nil
}

// Address returns the listener's address; initiators create channels to a
// route ending there.
func (l *Listener) Address() routing.Address { return l.addr }

// StaticPublic returns the static public key the listener's responders
// prove, for initiators to pin.
func (l *Listener) StaticPublic() noise.Key { return l.static.Public }

// Stats returns the counters of the listener and of every responder it has
// created, added up.
func (l *Listener) Stats() Stats { return l.stats.snapshot() }

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

	l.mu.Lock()
	if l.closed || l.pending >= l.cfg.MaxPendingHandshakes {
		l.mu.Unlock()
		l.stats.inc(statOverloaded)
		l.log.Debug("securechannel: too many pending handshakes", "listener", l.addr.Value, "from", m.Return().String())
		return nil
	}
	l.pending++
	l.mu.Unlock()

	ch, err := l.startResponder(ctx) // releases the pending slot on failure
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

// startResponder starts a responder channel in a pending slot that the
// caller has taken, with its handshake timer running. The slot is released
// when the handshake completes or the responder stops, or at once on error.
func (l *Listener) startResponder(ctx context.Context) (*Channel, error) {
	ch := newChannel(l.node, false, l.log, &l.stats)
	var once sync.Once // the pending slot is released exactly once
	release := func(established bool) {
		once.Do(func() {
			l.mu.Lock()
			l.pending--
			if established && !l.closed {
				l.channels[ch] = true
				l.byLocal[ch.local] = ch
			}
			l.mu.Unlock()
		})
	}
	hs, err := noise.NewHandshake(noise.Config{StaticKeyPair: l.static, EphemeralKeyPair: l.cfg.ephemeral})
	if err != nil {
		release(false)
		return nil, fmt.Errorf("securechannel: %w", err)
	}
	ep := &endpoint{ch: ch, hs: hs, authorized: l.cfg.Authorized}
	timer := time.AfterFunc(l.cfg.HandshakeTimeout, func() {
		if !ch.complete.Load() {
			ch.stats.inc(statHandshakeTimeouts)
			ch.Close()
		}
	})
	var idle idleWatch
	ep.onComplete = func() {
		timer.Stop()
		release(true)
		if l.cfg.IdleTimeout > 0 {
			idle.start(ch, l.cfg.IdleTimeout)
		}
	}
	ep.onStop = func() {
		timer.Stop()
		idle.stop()
		release(false)
		l.mu.Lock()
		delete(l.channels, ch)
		if l.byLocal[ch.local] == ch {
			delete(l.byLocal, ch.local)
		}
		l.mu.Unlock()
	}

	l.mu.Lock()
	closed := l.closed
	if !closed {
		l.channels[ch] = false
	}
	l.mu.Unlock()
	if closed {
		timer.Stop()
		release(false)
		return nil, fmt.Errorf("securechannel: listener %s: %w", l.addr, ErrClosed)
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
