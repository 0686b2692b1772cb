package forwarding

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// StaticServiceAddress is the address of the named-forwarder service.
const StaticServiceAddress = "static_forwarding_service"

// StaticPrefix starts every named forwarder's address: NAME is reached at
// forward_to_NAME, as in the 2022 Ockam static forwarding service.
const StaticPrefix = "forward_to_"

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// StaticConfig configures the static (named) forwarding service.
type StaticConfig struct {
	// AfterClose ties a name's forwarder to the connection of its latest
	// registration, as Config.AfterClose does.
	AfterClose func(conn routing.Address, f func()) (stop func() bool)
	// Token, when set, must accompany every registration ("NAME:TOKEN").
	Token string
	// Tokens, when set, gives each name its own token; a name missing from
	// it can be claimed only with Token (if set), or not at all.
	Tokens map[string]string
	// TokenHashes, when non-nil, replaces Token and Tokens (a node owner's
	// settings): a name in it needs the token whose SHA-256 it holds, a
	// name missing from it needs none. SetTokenHashes replaces it.
	TokenHashes map[string][32]byte
	// Logger receives refused registrations, at most once a second; nil
	// discards.
	Logger *slog.Logger
	// MaxPerConnection limits the names one connection holds; 0 means no
	// limit.
	MaxPerConnection int
	// MaxRouteBytes is as in Config; 0 means DefaultMaxRouteBytes.
	MaxRouteBytes int
}

// StaticService serves named forwarders. Registration: send the BARE string
// "NAME" (or "NAME:TOKEN") to static_forwarding_service; the reply comes
// from forward_to_NAME with the payload echoed, so the forwarding route is
// in its return route, as with forwarding_service. A refused registration is
// answered from the service with the string "error: REASON".
//
// A name held by a live registration is never given to another connection
// on a registration that proves nothing: the connection holding it may
// register it again, and a registration carrying the name's token (the
// holder reconnecting) moves it; anyone else is refused with
// "error: name in use", logged and counted. A name needing no token is
// free again once its connection closes.
//
// It is safe for concurrent use.
type StaticService struct {
	cfg  StaticConfig
	node *node.Node

	mu     sync.Mutex
	names  map[string]*staticForwarder
	perCon map[routing.Address]int // names held per connection
	// pending holds names being registered (reply sent, not yet
	// published) and the connection registering each.
	pending map[string]routing.Address
	count   atomic.Int64
	closed  bool   // guarded by mu
	claims  uint64 // registrations that have claimed a name; guarded by mu

	hashes  atomic.Pointer[map[string][32]byte] // nil: Token and Tokens apply
	refused struct{ inUse, unauthorized, overCap, invalid atomic.Uint64 }
	log     *slog.Logger
	logRate rate.Sometimes
}

// StaticStats are the static service's counters.
type StaticStats struct {
	Forwarders          int    // live named forwarders
	RefusedInUse        uint64 // registrations refused: the name is held by another connection
	RefusedUnauthorized uint64 // registrations refused: missing or wrong token
	RefusedOverCap      uint64 // registrations refused: the connection holds MaxPerConnection names
	RefusedInvalid      uint64 // registrations refused: not a string, invalid name, route too long
}

// Stats returns a snapshot of the counters.
func (s *StaticService) Stats() StaticStats {
	return StaticStats{
		Forwarders:          s.Forwarders(),
		RefusedInUse:        s.refused.inUse.Load(),
		RefusedUnauthorized: s.refused.unauthorized.Load(),
		RefusedOverCap:      s.refused.overCap.Load(),
		RefusedInvalid:      s.refused.invalid.Load(),
	}
}

// SetTokenHashes replaces StaticConfig.TokenHashes (nil included: then
// Token and Tokens apply again). It applies to the next registration;
// names already held stay where they are.
func (s *StaticService) SetTokenHashes(h map[string][32]byte) {
	if h == nil {
		s.hashes.Store(nil)
		return
	}
	c := make(map[string][32]byte, len(h))
	for k, v := range h {
		c[k] = v
	}
	s.hashes.Store(&c)
}

// Close stops the service and removes every named forwarder. It is
// idempotent.
func (s *StaticService) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	names := s.names
	s.names = make(map[string]*staticForwarder)
	for _, f := range names {
		if f.cancelWatch != nil {
			f.cancelWatch()
		}
	}
	s.count.Store(0)
	clear(s.perCon)
	s.mu.Unlock()
	ctx := context.Background()
	s.node.StopWorker(ctx, StaticServiceAddress)
	for name := range names {
		s.node.StopWorker(ctx, StaticPrefix+name)
	}
}

// StartStatic starts the static forwarding service on n.
func StartStatic(ctx context.Context, n *node.Node, cfg StaticConfig) (*StaticService, error) {
	if cfg.MaxRouteBytes <= 0 {
		cfg.MaxRouteBytes = DefaultMaxRouteBytes
	}
	s := &StaticService{cfg: cfg, node: n, names: make(map[string]*staticForwarder), perCon: make(map[routing.Address]int),
		pending: make(map[string]routing.Address), log: cfg.Logger, logRate: rate.Sometimes{Interval: time.Second}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.SetTokenHashes(cfg.TokenHashes)
	// Inline, like forwarding_service: a slow registrant slows only itself.
	if _, err := n.StartWorkerConfig(ctx, node.HandlerFunc(s.register), node.WorkerConfig{Addresses: []string{StaticServiceAddress}, Inline: true}); err != nil {
		return nil, err
	}
	return s, nil
}

// Forwarders returns the number of live named forwarders.
func (s *StaticService) Forwarders() int { return int(s.count.Load()) }

var errUnauthorized = errors.New("unauthorized")

// reasonInUse is the refusal of a name held by another connection.
const reasonInUse = "name in use"

// authorize checks token for name; proven reports that the name has a
// token and it was given (which lets a registration move a held name).
func (s *StaticService) authorize(name, token string) (proven bool, err error) {
	if h := s.hashes.Load(); h != nil {
		want, ok := (*h)[name]
		if !ok {
			return false, nil
		}
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			return false, errUnauthorized
		}
		return true, nil
	}
	want, ok := s.cfg.Tokens[name]
	if !ok {
		if s.cfg.Tokens != nil && s.cfg.Token == "" {
			return false, errUnauthorized
		}
		want = s.cfg.Token
	}
	if want == "" {
		return false, nil
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return false, errUnauthorized
	}
	return true, nil
}

func (s *StaticService) register(ctx context.Context, snd node.Sender, m *node.Message) error {
	route := m.Return()
	if len(route) == 0 {
		return errors.New("forwarding: static registration without a return route")
	}
	// A refusal is answered, counted and logged (rate-limited); it is not
	// returned as an error, which the node would log again.
	refuse := func(counter *atomic.Uint64, name, reason string) error {
		counter.Add(1)
		s.logRate.Do(func() {
			s.log.Warn("named forwarder registration refused", "name", name, "reason", reason, "conn", route[0].String())
		})
		s.node.Route(ctx, routing.TransportMessage{
			Version: routing.Version, Onward: route, Return: routing.Route{snd.Address()},
			Payload: bare.AppendString(nil, "error: "+reason),
		})
		return nil
	}
	body, err := node.Body[string](m)
	if err != nil {
		return refuse(&s.refused.invalid, "", "the payload must be a string NAME or NAME:TOKEN")
	}
	name, token, _ := strings.Cut(body, ":")
	if !validName.MatchString(name) {
		return refuse(&s.refused.invalid, "", "invalid name (1-64 of A-Z a-z 0-9 _ . -)")
	}
	proven, err := s.authorize(name, token)
	if err != nil {
		return refuse(&s.refused.unauthorized, name, err.Error())
	}
	if routeBytes(route) > s.cfg.MaxRouteBytes {
		return refuse(&s.refused.invalid, name, "return route too long")
	}
	addr := routing.LocalAddress(StaticPrefix + name)
	// Kept for as long as the name is: a copy, not the memory of the frame
	// the registration arrived in.
	route = route.Clone()
	conn := route[0]
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return node.ErrClosed
	}
	f := s.names[name]
	claimant, claimed := s.pending[name]
	taken := !proven && (f != nil && f.conn != conn || claimed && claimant != conn)
	full := s.cfg.MaxPerConnection > 0 && (f == nil || f.conn != conn) && s.perCon[conn] >= s.cfg.MaxPerConnection
	var fresh *staticForwarder  // a new name's forwarder
	var moving *staticForwarder // a held name's forwarder, moving here
	var prev *routing.Route     // its route before the move
	var claim uint64            // this registration's claim, when it makes one
	if !taken && !full {
		// Claim the name until the reply is queued, so that no other
		// connection slips in meanwhile.
		s.pending[name] = conn
		// The name leads here before the registrant hears that it does:
		// a message sent to it as soon as the reply arrives must neither
		// find no such address (dropped, and counted as a probe) nor go
		// to the previous holder. Messages wait at the gate until the
		// reply is queued, so the registrant still sees the reply first.
		gate := make(chan struct{})
		defer close(gate) // after the reply and the publication below
		s.claims++
		claim = s.claims
		if f != nil {
			f.claim = claim
			moving, prev = f, f.route.Load()
			f.gate.Store(&gate)
			f.route.Store(&route)
		} else {
			fresh = &staticForwarder{claim: claim}
			fresh.gate.Store(&gate)
			fresh.route.Store(&route)
			if _, err := s.node.StartWorkerConfig(ctx, fresh, node.WorkerConfig{Addresses: []string{addr.Value}, Inline: true}); err != nil {
				delete(s.pending, name)
				s.mu.Unlock()
				return fmt.Errorf("forwarding: starting %s: %w", addr, err)
			}
			s.names[name] = fresh
			s.count.Add(1)
			fresh.conn = conn
			s.perCon[conn]++
		}
	}
	s.mu.Unlock()
	if taken {
		return refuse(&s.refused.inUse, name, reasonInUse)
	}
	if full {
		return refuse(&s.refused.overCap, name, "too many names for this connection")
	}
	// The reply, then the publication (connection, expiry watch) and the
	// gate opened: the reply is queued on the registrant's connection ahead
	// of any message forwarded to it, so the registrant sees the reply
	// first. (Not under s.mu: the reply may wait for room in the
	// registrant's queue.)
	err = s.node.Route(ctx, routing.TransportMessage{
		Version: routing.Version, Onward: route, Return: routing.Route{addr}, Payload: m.Payload(),
	})
	s.mu.Lock()
	if s.pending[name] == conn {
		delete(s.pending, name)
	}
	if err != nil || s.closed {
		if fresh != nil && s.names[name] == fresh && fresh.gen == 0 {
			// Nobody was told of it: take the new name back (its worker
			// stopped under s.mu, as in expire).
			delete(s.names, name)
			s.releaseConn(fresh.conn)
			s.count.Add(-1)
			s.node.StopWorker(context.Background(), addr.Value)
		}
		if moving != nil {
			// The registrant was not told: the name leads back to its
			// holder, unless another registration moved it meanwhile.
			moving.route.CompareAndSwap(&route, prev)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("forwarding: replying to %s: %w", route, err)
		}
		return node.ErrClosed
	}
	if f = s.names[name]; f == nil {
		f = &staticForwarder{}
		f.route.Store(&route)
		if _, err := s.node.StartWorkerConfig(ctx, f, node.WorkerConfig{Addresses: []string{addr.Value}, Inline: true}); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("forwarding: starting %s: %w", addr, err)
		}
		s.names[name] = f
		s.count.Add(1)
	} else {
		if f.claim != claim {
			// A later registration has claimed the name since (a holder
			// moving it with its token): it leads there already, and
			// this one, though answered, must not take it back.
			s.mu.Unlock()
			return nil
		}
		f.route.Store(&route) // moved (or, for a new name, published)
		s.releaseConn(f.conn)
	}
	f.conn = conn
	s.perCon[conn]++
	f.gen++
	gen := f.gen
	if f.cancelWatch != nil {
		f.cancelWatch()
		f.cancelWatch = nil
	}
	if s.cfg.AfterClose != nil {
		f.cancelWatch = s.cfg.AfterClose(conn, func() { go s.expire(name, gen) })
	}
	s.mu.Unlock()
	return nil
}

// releaseConn forgets one name held by conn; s.mu is held.
func (s *StaticService) releaseConn(conn routing.Address) {
	if s.perCon[conn]--; s.perCon[conn] <= 0 {
		delete(s.perCon, conn)
	}
}

// expire removes name's forwarder if it has not moved since generation gen.
func (s *StaticService) expire(name string, gen uint64) {
	s.mu.Lock()
	f := s.names[name]
	if f == nil || f.gen != gen {
		s.mu.Unlock()
		return
	}
	delete(s.names, name)
	s.releaseConn(f.conn)
	s.count.Add(-1)
	// Under s.mu, with the name: a registration must never find the name
	// free while its address is still taken (it could not start its
	// forwarder, and its registrant would wait for a reply that never
	// comes). Stopping an inline worker does not block.
	s.node.StopWorker(context.Background(), StaticPrefix+name)
	s.mu.Unlock()
}

type staticForwarder struct {
	route atomic.Pointer[routing.Route]
	// gate, when set, holds messages until the latest registration's
	// reply is queued (or the registration abandoned), which closes it.
	gate atomic.Pointer[chan struct{}]
	// guarded by StaticService.mu:
	conn        routing.Address // the registrant's connection
	gen         uint64
	claim       uint64 // the latest registration that claimed the name
	cancelWatch func() bool
}

// RewriteOnward implements node.RouteRewriter: the message leaves with the
// registrant's route, unless a registration's gate would hold it (then
// HandleMessage must handle it).
func (f *staticForwarder) RewriteOnward(routing.Route) (routing.Route, bool) {
	r := f.route.Load()
	if g := f.gate.Load(); g != nil {
		select {
		case <-*g:
		default:
			return nil, false
		}
	}
	return *r, true
}

// Relayed implements node.RouteRewriter: HandleMessage does nothing but
// forward.
func (f *staticForwarder) Relayed() {}

func (f *staticForwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	// The route before the gate: a registration stores its gate before its
	// route, so a message that sees the new route also sees the gate that
	// holds it until the registrant's reply is queued.
	r := f.route.Load()
	if g := f.gate.Load(); g != nil {
		select {
		case <-*g:
		default:
			select {
			case <-*g:
			case <-ctx.Done():
				return ctx.Err()
			}
			r = f.route.Load()
		}
	}
	tm := m.Transport()
	tm.Onward = *r
	return s.Forward(ctx, tm)
}
