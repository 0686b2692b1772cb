package securechannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// Config configures the initiator side of a channel, for Create. Create
// only reads a Config, so one may be shared.
//
// A Config must say which responder to accept, or Create fails with
// ErrNoPeerPolicy: pin its identity (ExpectedPeerStatic), check it
// (VerifyPeer, for example KnownPeers.Verifier for trust on first use), or,
// for experiments and the 2021 behaviour, ask for an unauthenticated channel
// with InsecureAcceptAnyPeer. The other fields' zero values are usable: a
// fresh static key pair for the channel and the April 2021 listener message
// that ockam 0.8.0 expects.
//
//	// pinned: the identity the listener printed
//	id, _ := securechannel.ParseIdentity("5f2c…")
//	kp, _ := securechannel.LoadOrCreateKey(keyPath) // our identity, for the listener's allow-list
//	ch, err := securechannel.Create(ctx, n, route, securechannel.Config{StaticKeyPair: kp, ExpectedPeerStatic: id.Key()})
type Config struct {
	// StaticKeyPair is this side's long-term X25519 key pair, which the
	// responder learns (encrypted) in M3. The zero value means a fresh key
	// pair for this channel, as Rust's SecureChannel::create did, which
	// gives the responder nothing to recognise; use LoadOrCreateKey for a
	// persistent identity.
	StaticKeyPair noise.KeyPair

	// ExpectedPeerStatic, when not the zero Key, pins the responder's static
	// public key (Identity.Key). An M2 carrying another key is dropped and
	// counted as Unauthorized, and the initiator waits RefusedPeerWait for a
	// genuine M2, so an attacker who injects M2 cannot end the handshake at
	// once; if none comes, Create's error wraps ErrUnauthorizedPeer and
	// names both identities.
	ExpectedPeerStatic noise.Key

	// VerifyPeer, when not nil, is called with the responder's identity
	// once M2 proves it (after ExpectedPeerStatic, if both are set); a
	// non-nil error refuses that M2 like a pin mismatch, and Create's error
	// wraps it. KnownPeers.Verifier returns one. It runs on the channel's
	// worker goroutine.
	VerifyPeer func(Identity) error

	// InsecureAcceptAnyPeer accepts whatever responder answers, as the 2021
	// Rust programs did. The channel is encrypted but NOT authenticated:
	// anyone on the route, the hub included, can sit in the middle and read
	// everything. Only for experiments and tests; it is ignored when
	// ExpectedPeerStatic or VerifyPeer is set.
	InsecureAcceptAnyPeer bool

	// RefusedPeerWait is how long Create keeps waiting for a genuine M2
	// after refusing one (pin mismatch or VerifyPeer error) before it fails;
	// 0 means DefaultRefusedPeerWait. It never extends ctx.
	RefusedPeerWait time.Duration

	// ListenerMessage is the wrapping of M1 for the listener: the zero value
	// ListenerMessageEnum for ockam 0.8.0 (April 2021) peers,
	// ListenerMessageStruct for Rust peers from 2021-04-29 on. ockamhub
	// listeners accept both.
	ListenerMessage ListenerMessageForm

	// Logger receives debug logs of handshakes and dropped messages; nil
	// uses the node's logger.
	Logger *slog.Logger

	// ephemeral replaces the random ephemeral key pair, in tests only (see
	// export_test.go): reusing an ephemeral key destroys forward secrecy.
	ephemeral *noise.KeyPair
}

// DefaultRefusedPeerWait is Config.RefusedPeerWait's default.
const DefaultRefusedPeerWait = time.Second

// authenticated reports whether cfg says which responder to accept.
func (cfg *Config) hasPeerPolicy() bool {
	return cfg.ExpectedPeerStatic != (noise.Key{}) || cfg.VerifyPeer != nil || cfg.InsecureAcceptAnyPeer
}

// Channel is one end of an established secure channel: a worker on a node
// with two random 32-hex addresses (protocol.md §10.3). Messages sent to
// [Address(), ...rest] are encrypted and delivered along rest on the peer's
// node; messages the peer sends arrive with Address() prepended to their
// return route, so replies go back through the channel.
//
// A Channel is created by Create (initiator) or by a Listener (responder).
// The zero value is not usable. Its methods are safe for concurrent use.
type Channel struct {
	node      *node.Node
	local     routing.Address // address_local: plaintext side
	remote    routing.Address // address_remote: ciphertext side, peer-facing
	initiator bool
	log       *slog.Logger
	stats     counters

	authenticated bool              // set before the worker starts
	localStatic   noise.Key         // set before the worker starts
	source        []routing.Address // responder: its first message's source; set under the listener's lock
	seq           uint64            // responder: arrival order of its first message; set under the listener's lock

	// Set by the worker before done is closed; read-only afterwards.
	done         chan struct{}
	doneOnce     sync.Once
	err          error
	peer         noise.Key
	hash         [32]byte
	complete     atomic.Bool
	unauthorized atomic.Bool   // an M2 was refused for its static key (initiator)
	refused      chan struct{} // signalled (non-blocking) when an M2 is refused
	refusedMu    sync.Mutex
	refusedErr   error        // the last refusal's reason
	lastActive   atomic.Int64 // UnixNano of the last data message either way

	closeOnce sync.Once
}

func newChannel(n *node.Node, initiator bool, log *slog.Logger, parent *counters) *Channel {
	if log == nil {
		log = n.Logger()
	}
	ch := &Channel{
		node:      n,
		local:     routing.LocalAddress(node.RandomAddress(16)),
		remote:    routing.LocalAddress(node.RandomAddress(16)),
		initiator: initiator,
		log:       log,
		done:      make(chan struct{}),
		refused:   make(chan struct{}, 1),
	}
	ch.stats.parent = parent
	return ch
}

// String describes ch by its addresses and role, which never change: fmt
// would otherwise print its fields by reflection, racing with the worker
// that sets them (atomics included).
func (ch *Channel) String() string {
	role := "responder"
	if ch.initiator {
		role = "initiator"
	}
	return "securechannel.Channel{" + role + ", local: " + ch.local.String() + ", remote: " + ch.remote.String() + "}"
}

// GoString is String, for %#v.
func (ch *Channel) GoString() string { return ch.String() }

// Format prints String for every verb.
func (ch *Channel) Format(f fmt.State, verb rune) { fmt.Fprint(f, ch.String()) }

// LogValue implements slog.LogValuer with String.
func (ch *Channel) LogValue() slog.Value { return slog.StringValue(ch.String()) }

// Address returns address_local, the plaintext side of the channel: send to
// [ch.Address(), worker] to reach worker on the peer's node.
func (ch *Channel) Address() routing.Address { return ch.local }

// RemoteAddress returns address_remote, the address the peer sends
// ciphertext and handshake messages to. Local workers have no reason to use
// it.
func (ch *Channel) RemoteAddress() routing.Address { return ch.remote }

// IsInitiator reports whether this end called Create.
func (ch *Channel) IsInitiator() bool { return ch.initiator }

// PeerStatic returns the peer's static public key, learned (and proven to be
// held by the peer) in the handshake. It identifies the peer only if the key
// is known by other means: see the package doc.
func (ch *Channel) PeerStatic() noise.Key { return ch.peer }

// LocalStatic returns this end's static public key: its identity, as the
// peer sees it.
func (ch *Channel) LocalStatic() noise.Key { return ch.localStatic }

// PeerIdentity returns PeerStatic as an Identity.
func (ch *Channel) PeerIdentity() Identity { return Identity(ch.peer) }

// Authenticated reports whether the peer's identity was checked: for an
// initiator, pinned or verified (not InsecureAcceptAnyPeer); for a
// responder, admitted by ListenerConfig.Authorized (not AcceptAnyInitiator).
func (ch *Channel) Authenticated() bool { return ch.authenticated }

// HandshakeHash returns the final Noise handshake hash h, equal on both ends
// and unique to this channel; Rust called it auth_hash. Higher layers can
// sign it to bind an identity to the channel.
func (ch *Channel) HandshakeHash() [32]byte { return ch.hash }

// Stats returns a snapshot of the channel end's counters.
func (ch *Channel) Stats() Stats { return ch.stats.snapshot() }

// Close stops the channel's worker and waits until it has stopped; messages
// in flight are dropped, and the peer learns nothing (the 2021 protocol has
// no close message). It is idempotent and safe to call from any goroutine.
func (ch *Channel) Close() error {
	ch.closeOnce.Do(func() {
		for _, a := range []routing.Address{ch.remote, ch.local} {
			err := ch.node.StopWorker(context.Background(), a.Value)
			if err != nil && !errors.Is(err, node.ErrUnknownAddress) {
				ch.log.Debug("securechannel: close", "channel", ch.local.Value, "err", err)
			}
		}
	})
	return nil
}

// touch records data-message activity, for ListenerConfig.IdleTimeout.
func (ch *Channel) touch() { ch.lastActive.Store(time.Now().UnixNano()) }

// finish records the outcome of the handshake, once.
func (ch *Channel) finish(err error) {
	ch.doneOnce.Do(func() {
		ch.err = err
		if err == nil {
			ch.complete.Store(true)
		}
		close(ch.done)
	})
}

// Create runs the initiator side of a handshake with the listener at the end
// of route (for example [1#hub:4000, 0#alias, 0#secure_channel]) and returns
// the channel once it is established, or an error when ctx ends first.
//
// It starts a worker at two random addresses, sends M1 wrapped as the
// listener message from address_remote, answers the responder's M2 with M3,
// and is then complete (protocol.md §10.3). Genuine messages are never lost
// to bad ones: an M2 that is malformed, fails authentication or carries an
// unpinned key is dropped and counted, and the handshake goes on.
func Create(ctx context.Context, n *node.Node, route routing.Route, cfg Config) (*Channel, error) {
	if len(route) == 0 {
		return nil, fmt.Errorf("securechannel: create: %w", node.ErrEmptyRoute)
	}
	if cfg.ListenerMessage > ListenerMessageStruct {
		return nil, fmt.Errorf("securechannel: create: unknown %v", cfg.ListenerMessage)
	}
	if !cfg.hasPeerPolicy() {
		return nil, fmt.Errorf("securechannel: create: %w", ErrNoPeerPolicy)
	}
	static := cfg.StaticKeyPair
	defer static.Destroy() // this copy; the handshake keeps what it needs
	if static == (noise.KeyPair{}) {
		var err error
		if static, err = noise.GenerateKeyPair(); err != nil {
			return nil, fmt.Errorf("securechannel: %w", err)
		}
	}
	hs, err := noise.NewHandshake(noise.Config{Initiator: true, StaticKeyPair: static, EphemeralKeyPair: cfg.ephemeral})
	if err != nil {
		return nil, fmt.Errorf("securechannel: %w", err)
	}
	m1, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("securechannel: %w", err)
	}
	ch := newChannel(n, true, cfg.Logger, nil)
	ch.localStatic = static.Public
	ch.authenticated = cfg.ExpectedPeerStatic != (noise.Key{}) || cfg.VerifyPeer != nil
	ep := newEndpoint(ch, hs)
	ep.pin, ep.verify = cfg.ExpectedPeerStatic, cfg.VerifyPeer
	if err := ep.start(ctx); err != nil {
		hs.Destroy()
		return nil, err
	}
	// M1 goes from address_remote, so that the responder's M2, and later its
	// data, come back to the ciphertext side (protocol.md §10.3 step 1).
	err = n.Route(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  route,
		Return:  routing.Route{ch.remote},
		Payload: appendListenerMessage(nil, cfg.ListenerMessage, m1, nil),
	})
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("securechannel: sending M1 to %s: %w", route, err)
	}
	wait := cfg.RefusedPeerWait
	if wait <= 0 {
		wait = DefaultRefusedPeerWait
	}
	var grace <-chan time.Time
	for waiting := true; waiting; {
		select {
		case <-ch.done:
			waiting = false
		case <-ch.refused:
			if grace == nil {
				t := time.NewTimer(wait)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			ch.Close()
			return nil, fmt.Errorf("securechannel: handshake with %s: %w", route, ch.refusal())
		case <-ctx.Done():
			ch.Close()
			if ch.unauthorized.Load() {
				return nil, fmt.Errorf("securechannel: handshake with %s: %w (%w)", route, ch.refusal(), ctx.Err())
			}
			return nil, fmt.Errorf("securechannel: handshake with %s: %w", route, ctx.Err())
		}
	}
	if ch.err != nil {
		ch.Close()
		return nil, fmt.Errorf("securechannel: handshake with %s: %w", route, ch.err)
	}
	return ch, nil
}

// refusal returns the reason the last M2 was refused.
func (ch *Channel) refusal() error {
	ch.refusedMu.Lock()
	defer ch.refusedMu.Unlock()
	return ch.refusedErr
}

// refuse records that an M2 was refused for err and wakes Create.
func (ch *Channel) refuse(err error) {
	ch.refusedMu.Lock()
	ch.refusedErr = err
	ch.refusedMu.Unlock()
	ch.unauthorized.Store(true)
	select {
	case ch.refused <- struct{}{}:
	default:
	}
}

// endpoint is the worker behind a Channel. At address_remote it is an
// inline worker (node.WorkerConfig.Inline) that hands each message over:
// to the handshake goroutine (run) until the channel is established, then
// to the decrypting goroutine (deliverData, decryptLoop). At address_local
// a worker of the node with its own goroutine and mailbox encrypts
// (encrypt). Encrypting or decrypting in the sender's or the transport
// reader's goroutine instead (no hand-off) was measured slower: for a
// single portal stream, that goroutine then reads and encrypts (or
// decrypts) in turn instead of in parallel, and every channel over one
// connection would be decrypted by its one reader. (Decrypting a small
// message where it arrives when decryptLoop is idle was tried and removed:
// the transport's reader then blocked on a full destination mailbox at
// once, instead of after decryptQueue messages, and closing the channel
// no longer freed it.)
//
// The handshake runs in a goroutine of its own (run), which takes everything
// that arrives at address_remote until the handshake is complete and every
// message queued behind it has been handled: a slow VerifyPeer never holds
// up a transport's reader, and a data message that follows M3 is never
// handled before it. Then run sets direct and ends.
type endpoint struct {
	ch *Channel

	// Set before the worker starts; read-only afterwards.
	pin        noise.Key            // initiator: the responder key required, or zero
	verify     func(Identity) error // initiator: Config.VerifyPeer, or nil
	authorized func(noise.Key) bool // responder: nil accepts every key
	onComplete func()               // responder hooks, set by the listener
	onStop     func()
	onRefused  func(peer noise.Key, from routing.Route)

	// Owned by run until ready is set (happens-before: ready is an atomic);
	// read-only afterwards.
	hs          *noise.HandshakeState // nil once the handshake is complete
	remoteRoute routing.Route         // where handshake replies and data go
	send, recv  *noise.CipherState
	ready       atomic.Bool // the handshake is complete: the fields above are final

	// The hand-off to run. direct is set under mu once run has ended after
	// completing the handshake; from then on address_remote decrypts inline.
	queue    chan queued
	mu       sync.Mutex
	direct   atomic.Bool
	pending  int  // senders between their check of direct and their enqueue; under mu
	stopping bool // Shutdown has begun; under mu
	running  bool // run owns the hand-off and the cleanup at stop; under mu

	// life ends when the worker stops: it bounds the handshake goroutine's
	// sends. A forward in a sender's
	// goroutine is bounded by that sender's context, as in any inline
	// worker (binding each to life too cost 1 µs and 5 allocations a
	// message).
	life   context.Context
	cancel context.CancelFunc

	// sendN is the next data-message counter (refused at noise.MaxNonce);
	// it belongs to the encrypting worker, whose one goroutine encrypts and
	// sends one message at a time, so that they leave in counter order.
	sendN uint32

	// Data messages are decrypted by decryptLoop, in parallel with the
	// goroutine that delivered them: decq holds them in arrival order.
	decOnce sync.Once // makes decq and starts decryptLoop, at the first hand-off
	decq    chan queued

	winMu  sync.Mutex // guards window: decryptions may run in several goroutines
	window replayWindow
}

// queued is a message for run or decryptLoop, with the Sender it came with.
type queued struct {
	s node.Sender
	m *node.Message
	// exclusive: m's payload is in memory of its own
	// (node.Message.ExclusivePayload), so it may be decrypted in place.
	exclusive bool
}

// handshakeQueue bounds the messages waiting for a channel's handshake
// goroutine; a sender waits while it is full, as for a worker's mailbox.
const handshakeQueue = 16

// decryptQueue bounds the data messages waiting for a channel's decrypting
// goroutine (as many as a worker's mailbox: 64 was measured slower for
// 60 KiB messages); a sender waits while it is full, as for a mailbox. The
// queue and its goroutine exist only once a data message has come.
const decryptQueue = 256

// newEndpoint returns the endpoint of ch, with hs for its handshake.
func newEndpoint(ch *Channel, hs *noise.HandshakeState) *endpoint {
	life, cancel := context.WithCancel(context.Background())
	return &endpoint{
		ch:      ch,
		hs:      hs,
		queue:   make(chan queued, handshakeQueue),
		running: true,
		life:    life,
		cancel:  cancel,
	}
}

// start registers the endpoint's workers, the encrypting one at
// address_local and the inline one at address_remote, and starts its
// handshake goroutine.
func (ep *endpoint) start(ctx context.Context) error {
	n := ep.ch.node
	if err := n.StartWorker(ctx, ep.ch.local.Value, node.HandlerFunc(ep.encrypt)); err != nil {
		ep.cancel()
		return fmt.Errorf("securechannel: starting channel worker: %w", err)
	}
	_, err := n.StartWorkerConfig(ctx, ep, node.WorkerConfig{
		Addresses: []string{ep.ch.remote.Value},
		Inline:    true,
	})
	if err != nil {
		n.StopWorker(context.Background(), ep.ch.local.Value)
		ep.cancel()
		return fmt.Errorf("securechannel: starting channel worker: %w", err)
	}
	go ep.run()
	return nil
}

// HandleMessage handles what arrives at address_remote (plaintext at
// address_local goes to the encrypting worker, encrypt): handshake messages
// until the handshake completes and ciphertext afterwards (protocol.md
// §10.3). It runs in the sender's goroutine, possibly in several at once.
func (ep *endpoint) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	if ep.direct.Load() {
		return ep.deliverData(ctx, s, m)
	}
	return ep.enqueue(ctx, s, m)
}

// enqueue hands a message that arrived at address_remote to run, or
// decrypts it here if run has ended in the meantime.
func (ep *endpoint) enqueue(ctx context.Context, s node.Sender, m *node.Message) error {
	ep.mu.Lock()
	if ep.direct.Load() {
		ep.mu.Unlock()
		return ep.deliverData(ctx, s, m)
	}
	if ep.stopping {
		ep.mu.Unlock()
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ErrClosed)
	}
	ep.pending++
	ep.mu.Unlock()
	defer func() {
		ep.mu.Lock()
		ep.pending--
		ep.mu.Unlock()
	}()
	// m is lent to an inline worker only for this call: run gets a copy.
	q := queued{s: s, m: node.NewMessage(m.Address(), m.Transport())}
	select {
	case ep.queue <- q:
		return nil
	default:
	}
	node.BeforeBlock(ctx) // the queue is full, as a mailbox can be
	select {
	case ep.queue <- q:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ctx.Err())
	case <-ep.life.Done():
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ErrClosed)
	}
}

// deliverData hands a data message to decryptLoop, in the order of
// arrival.
func (ep *endpoint) deliverData(ctx context.Context, s node.Sender, m *node.Message) error {
	ep.decOnce.Do(func() {
		ep.decq = make(chan queued, decryptQueue)
		go ep.decryptLoop()
	})
	// m is lent to an inline worker only for this call: decryptLoop gets a
	// copy. A payload the transport read into memory of its own (no other
	// reader, no reuse) is decrypted where it lies: no 64 KiB allocation,
	// clearing and collection per portal chunk.
	q := queued{s: s, m: node.NewMessage(m.Address(), m.Transport()), exclusive: exclusivePayload(m)}
	select {
	case ep.decq <- q:
		return nil
	default:
	}
	node.BeforeBlock(ctx) // the queue is full, as a mailbox can be
	select {
	case ep.decq <- q:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ctx.Err())
	case <-ep.life.Done():
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ErrClosed)
	}
}

// exclusivePayload reports whether m's payload may be decrypted in place:
// the transport that read it routed it straight here and says it is in
// memory of its own (node.Message.ExclusivePayload; a message an inline
// worker passes on never is), and it came in over a transport hop, its
// return route starting with the hop's address as a transport puts it.
func exclusivePayload(m *node.Message) bool {
	r := m.Return()
	return m.ExclusivePayload() && len(r) > 0 && r[0].Type != routing.Local
}

// decryptLoop decrypts the data messages deliverData hands over, in order,
// until the worker stops; their forwards end then too.
func (ep *endpoint) decryptLoop() {
	for {
		select {
		case q := <-ep.decq:
			if err := ep.decrypt(ep.life, q.s, q.m, q.exclusive); err != nil {
				ep.ch.log.Debug("securechannel: delivering", "channel", ep.ch.local.Value, "err", err)
			}
		case <-ep.life.Done():
			return
		}
	}
}

// run is the handshake goroutine: it handles what arrives at address_remote
// in order until the handshake is complete and nothing more is queued or
// being queued, then hands address_remote over to inline decryption. If the
// worker stops first, run cleans up (see Shutdown).
func (ep *endpoint) run() {
	for {
		select {
		case q := <-ep.queue:
			if ep.ready.Load() {
				ep.decrypt(ep.life, q.s, q.m, false)
			} else if ep.hs != nil {
				ep.handshake(ep.life, q.s, q.m)
			} else {
				// Refused or failed: the worker is stopping.
				ep.drop(statHandshakeFailures, q.m, "message for a channel whose handshake failed", ErrClosed)
			}
		case <-ep.life.Done():
			ep.cleanup()
			return
		}
		if !ep.ready.Load() {
			continue
		}
		ep.mu.Lock()
		if len(ep.queue) > 0 || ep.pending > 0 {
			ep.mu.Unlock()
			continue
		}
		if ep.stopping {
			ep.mu.Unlock()
			ep.cleanup()
			return
		}
		ep.direct.Store(true)
		ep.running = false
		ep.mu.Unlock()
		return
	}
}

// Shutdown ends the handshake goroutine's sends and releases the senders
// waiting for their turn to encrypt, then releases the
// handshake, the listener's bookkeeping and a waiting Create; if the
// handshake goroutine is still running, it does that as it ends. It runs in
// the goroutine that stops the worker and never blocks.
func (ep *endpoint) Shutdown(context.Context) error {
	ep.mu.Lock()
	ep.stopping = true
	running := ep.running
	ep.mu.Unlock()
	ep.cancel()
	if !running {
		ep.cleanup()
	}
	return nil
}

// cleanup runs once, when the worker stops: in Shutdown, or in run if it
// was still running.
func (ep *endpoint) cleanup() {
	if ep.hs != nil {
		ep.hs.Destroy()
		ep.hs = nil
	}
	ep.ch.finish(ErrClosed)
	if ep.onStop != nil {
		ep.onStop()
	}
}

// drop counts a message that is dropped and logs it at debug level. Bad
// input is never an error of the worker: the channel carries on.
func (ep *endpoint) drop(s stat, m *node.Message, reason string, err error) {
	ep.ch.stats.inc(s)
	ep.ch.log.Debug("securechannel: dropped message", "channel", ep.ch.local.Value,
		"reason", reason, "from", m.Return().String(), "err", err)
}

// handshake processes M1 and M3 (responder) or M2 (initiator).
func (ep *endpoint) handshake(ctx context.Context, s node.Sender, m *node.Message) error {
	if len(m.Return()) == 0 {
		ep.drop(statHandshakeFailures, m, "handshake message with no return route", ErrHandshakeMessage)
		return nil
	}
	msg, err := parseVec(m.Payload())
	if err != nil {
		ep.drop(statHandshakeFailures, m, "malformed handshake message", fmt.Errorf("%w: %w", ErrHandshakeMessage, err))
		return nil
	}
	saved := *ep.hs       // a HandshakeState is plain values: a copy is a snapshot
	defer saved.Destroy() // its secrets, once restored or no longer needed
	if _, err := ep.hs.ReadMessage(nil, msg); err != nil {
		ep.drop(statHandshakeFailures, m, "handshake message rejected", err)
		return nil
	}

	if ep.ch.initiator {
		// M2 read: the responder's static key is known.
		// Anyone who saw M1 (which is in clear) can answer it with an M2 of
		// their own: a refused M2 is dropped, and the initiator waits a
		// little (Config.RefusedPeerWait) for the genuine one.
		got := Identity(ep.hs.PeerStatic())
		var refusal error
		if ep.pin != (noise.Key{}) && got.Key() != ep.pin {
			refusal = fmt.Errorf("the responder presented identity %s, not the pinned identity %s: %w",
				got, Identity(ep.pin), ErrUnauthorizedPeer)
		} else if ep.verify != nil {
			if err := ep.verify(got); err != nil {
				refusal = fmt.Errorf("%w (%w)", err, ErrUnauthorizedPeer)
			}
		}
		if refusal != nil {
			*ep.hs = saved
			ep.ch.refuse(refusal)
			ep.drop(statUnauthorized, m, "responder identity refused", refusal)
			return nil
		}
		ep.remoteRoute = m.Return() // §10.3 step 4: leads to the responder's address_remote
		m3, err := ep.hs.WriteMessage(nil, nil)
		if err == nil {
			err = s.SendFrom(ctx, ep.ch.remote, ep.remoteRoute, node.Raw(appendVec(nil, m3)))
		}
		if err != nil {
			ep.ch.finish(fmt.Errorf("sending M3: %w", err))
			return nil
		}
		return ep.complete()
	}

	if !ep.hs.Complete() {
		// M1 read (delivered by the listener); answer with M2.
		ep.remoteRoute = m.Return() // §10.3 step 3: leads to the initiator's address_remote
		m2, err := ep.hs.WriteMessage(nil, nil)
		if err != nil {
			// A low-order ephemeral key in M1 fails the ee DH here.
			ep.drop(statHandshakeFailures, m, "cannot answer M1", err)
			ep.stopSoon()
			return nil
		}
		return s.SendFrom(ctx, ep.ch.remote, ep.remoteRoute, node.Raw(appendVec(nil, m2)))
	}

	// M3 read: the initiator's static key is known and proven, since only
	// the holder of M1's ephemeral key could have produced this M3.
	ep.remoteRoute = m.Return() // §10.3 step 6
	if ep.authorized != nil && !ep.authorized(ep.hs.PeerStatic()) {
		ep.drop(statUnauthorized, m, "initiator static key not authorized", ErrUnauthorizedPeer)
		if ep.onRefused != nil {
			ep.onRefused(ep.hs.PeerStatic(), m.Return())
		}
		ep.hs.Destroy()
		ep.hs = nil
		ep.ch.finish(ErrUnauthorizedPeer)
		ep.stopSoon()
		return nil
	}
	return ep.complete()
}

// complete splits the handshake into the two transport ciphers and marks
// the channel established. The key order is Ockam's, not Noise's (protocol.md
// §10.2): noise.HandshakeState.Split already returns the initiator k2 to send
// and k1 to receive, and the responder the reverse.
func (ep *endpoint) complete() error {
	send, recv, err := ep.hs.Split()
	if err != nil {
		ep.ch.finish(err)
		return err
	}
	ep.send, ep.recv = send, recv
	ep.ch.peer = ep.hs.PeerStatic()
	ep.ch.hash = ep.hs.HandshakeHash()
	ep.hs.Destroy() // best effort: the chaining key and ephemeral key are no longer needed
	ep.hs = nil
	ep.ready.Store(true) // publishes send, recv and remoteRoute to encrypt and decrypt
	ep.ch.stats.inc(statHandshakes)
	if ep.onComplete != nil {
		ep.onComplete()
	}
	ep.ch.finish(nil)
	ep.ch.log.Debug("securechannel: established", "channel", ep.ch.local.Value, "initiator", ep.ch.initiator)
	return nil
}

// stopSoon stops the channel's worker from outside its own goroutine (a
// worker cannot wait for its own end).
func (ep *endpoint) stopSoon() {
	go ep.ch.Close()
}

// encrypt carries a plaintext message that arrived at address_local to the
// peer (protocol.md §10.5, sender steps 1–6), in the encrypting worker's
// goroutine.
// The inner message is encoded straight into the buffer that goes out, and
// sealed there in place: one allocation and one copy of the payload, or
// none when the sender gave up the memory around the payload and it has
// room (node.Message.PayloadRoom, layOutInner). The
// worker's one goroutine takes each counter, seals and sends in turn, so
// that messages leave in counter order; it waits for a blocked next hop as
// long as its context allows.
func (ep *endpoint) encrypt(ctx context.Context, s node.Sender, m *node.Message) error {
	if !ep.ready.Load() {
		return fmt.Errorf("securechannel: message for %s: %w", ep.ch.local, ErrNotReady)
	}
	onward := m.Onward()[min(1, len(m.Onward())):] // stepped, not copied: it is only encoded
	if len(onward) == 0 {
		return fmt.Errorf("securechannel: message for %s names no worker after the channel: %w", ep.ch.local, node.ErrEmptyRoute)
	}
	// The whole inner TransportMessage is encrypted, routes included, so the
	// route beyond the channel never appears on the wire.
	inner := routing.TransportMessage{Version: routing.Version, Onward: onward, Return: m.Return(), Payload: m.Payload()}
	ptLen := inner.EncodedLen()
	hdr := dataHeaderLen(ptLen)
	// A sender that gave up the memory around its payload
	// (node.Message.PayloadRoom) has it sealed where it lies, with no
	// allocation and no copy; otherwise it goes to a new buffer.
	var buf []byte
	var err error
	inPlace := false
	if room, off, ok := m.PayloadRoom(); ok {
		if buf, inPlace, err = layOutInner(room, off, &inner, hdr, ptLen); err != nil {
			return fmt.Errorf("securechannel: encoding message for %s: %w", onward, err)
		}
	}
	if !inPlace {
		buf = make([]byte, hdr, hdr+ptLen+noise.Overhead)
		if buf, err = inner.AppendBinary(buf); err != nil {
			return fmt.Errorf("securechannel: encoding message for %s: %w", onward, err)
		}
	}

	// Beyond 2021: Rust refused n == 65535 too, but we also count it and
	// return a sentinel, so the refusal is visible in Stats.
	if ep.sendN >= noise.MaxNonce {
		ep.ch.stats.inc(statNonceExhausted)
		return fmt.Errorf("securechannel: channel %s: %w", ep.ch.local, ErrNonceExhausted)
	}
	n := uint16(ep.sendN)
	ep.sendN++ // consumed even if routing fails below: a nonce is never reused
	payload := sealInPlace(buf, hdr, ep.send, n)
	// Counted before the hand-off: the next hop may be an inline worker
	// whose reply (an echo on the same node) comes back, and is counted as
	// received, before SendFrom returns; Stats must never show more
	// received than sent for a round trip that has completed.
	ep.ch.stats.inc(statSent)
	if inPlace {
		ep.ch.stats.inc(statSealedInPlace)
	}
	if err := s.SendFrom(ctx, ep.ch.remote, ep.remoteRoute, node.Raw(payload)); err != nil {
		if inPlace {
			ep.ch.stats.dec(statSealedInPlace)
		}
		ep.ch.stats.dec(statSent)
		return fmt.Errorf("securechannel: sending to %s: %w", ep.remoteRoute, err)
	}
	ep.ch.touch()
	return nil
}

// decrypt carries a data message from the peer on to its inner destination
// (protocol.md §10.5, receiver steps 1–4), in decryptLoop (or in run, for
// messages that came before the handshake goroutine ended). The plaintext
// goes to a new buffer, unless exclusive says the payload received is in
// memory of its own (node.Message.ExclusivePayload): otherwise it is
// read-only (a local sender may send one buffer again, a relay keep it). The inner message's payload,
// which aliases the plaintext, belongs to its destination.
func (ep *endpoint) decrypt(ctx context.Context, s node.Sender, m *node.Message, exclusive bool) error {
	open := openSealed
	if exclusive {
		open = openInPlace
	}
	n, pt, err := open(ep.recv, m.Payload())
	if err != nil {
		ep.drop(statDecryptFailures, m, "data message rejected", err)
		return nil
	}
	// Beyond 2021: Rust accepted any nonce. Only authenticated counters
	// reach the window, so forgeries cannot move it.
	ep.winMu.Lock()
	fresh := ep.window.accept(n)
	ep.winMu.Unlock()
	if !fresh {
		ep.drop(statReplays, m, fmt.Sprintf("counter %d", n), ErrReplay)
		return nil
	}
	// pt is ours and never modified again: the inner message's addresses
	// share its memory (one allocation fewer), and address_local is put at
	// the head of its return route as it is decoded (one more).
	inner, _, err := routing.DecodeMessageOwned(pt, ep.ch.local)
	if err != nil {
		ep.drop(statDecryptFailures, m, "inner message does not decode", err)
		return nil
	}
	ep.ch.stats.inc(statReceived)
	ep.ch.touch()
	if err := s.Forward(ctx, inner); err != nil {
		return fmt.Errorf("securechannel: delivering from %s: %w", ep.ch.local, err)
	}
	return nil
}
