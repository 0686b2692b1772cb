package forwarding

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

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
	// MaxPerConnection limits the names one connection holds; 0 means no
	// limit.
	MaxPerConnection int
	// MaxRouteBytes is as in Config; 0 means DefaultMaxRouteBytes.
	MaxRouteBytes int
}

// StaticService serves named forwarders. Registration: send the BARE string
// "NAME" (or "NAME:TOKEN") to static_forwarding_service; the reply comes
// from forward_to_NAME with the payload echoed, so the forwarding route is
// in its return route, as with forwarding_service. Registering the same name
// again, from any connection, moves it there. A refused registration is
// answered from the service with the string "error: REASON".
//
// It is safe for concurrent use.
type StaticService struct {
	cfg  StaticConfig
	node *node.Node

	mu     sync.Mutex
	names  map[string]*staticForwarder
	perCon map[routing.Address]int // names held per connection
	count  atomic.Int64
}

// StartStatic starts the static forwarding service on n.
func StartStatic(ctx context.Context, n *node.Node, cfg StaticConfig) (*StaticService, error) {
	if cfg.MaxRouteBytes <= 0 {
		cfg.MaxRouteBytes = DefaultMaxRouteBytes
	}
	s := &StaticService{cfg: cfg, node: n, names: make(map[string]*staticForwarder), perCon: make(map[routing.Address]int)}
	// Inline, like forwarding_service: a slow registrant slows only itself.
	if _, err := n.StartWorkerConfig(ctx, node.HandlerFunc(s.register), node.WorkerConfig{Addresses: []string{StaticServiceAddress}, Inline: true}); err != nil {
		return nil, err
	}
	return s, nil
}

// Forwarders returns the number of live named forwarders.
func (s *StaticService) Forwarders() int { return int(s.count.Load()) }

var errUnauthorized = errors.New("unauthorized")

func (s *StaticService) authorize(name, token string) error {
	want, ok := s.cfg.Tokens[name]
	if !ok {
		if s.cfg.Tokens != nil && s.cfg.Token == "" {
			return errUnauthorized
		}
		want = s.cfg.Token
	}
	if want == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(token)) != 1 {
		return errUnauthorized
	}
	return nil
}

func (s *StaticService) register(ctx context.Context, snd node.Sender, m *node.Message) error {
	route := m.Return()
	if len(route) == 0 {
		return errors.New("forwarding: static registration without a return route")
	}
	refuse := func(reason string) error {
		s.node.Route(ctx, routing.TransportMessage{
			Version: routing.Version, Onward: route, Return: routing.Route{snd.Address()},
			Payload: bare.AppendString(nil, "error: "+reason),
		})
		return fmt.Errorf("forwarding: static registration from %s refused: %s", route, reason)
	}
	body, err := node.Body[string](m)
	if err != nil {
		return refuse("the payload must be a string NAME or NAME:TOKEN")
	}
	name, token, _ := strings.Cut(body, ":")
	if !validName.MatchString(name) {
		return refuse("invalid name (1-64 of A-Z a-z 0-9 _ . -)")
	}
	if err := s.authorize(name, token); err != nil {
		return refuse(err.Error())
	}
	if routeBytes(route) > s.cfg.MaxRouteBytes {
		return refuse("return route too long")
	}
	addr := routing.LocalAddress(StaticPrefix + name)
	// Kept for as long as the name is: a copy, not the memory of the frame
	// the registration arrived in.
	route = route.Clone()
	conn := route[0]
	s.mu.Lock()
	f := s.names[name]
	full := s.cfg.MaxPerConnection > 0 && (f == nil || f.conn != conn) && s.perCon[conn] >= s.cfg.MaxPerConnection
	s.mu.Unlock()
	if full {
		return refuse("too many names for this connection")
	}
	// Reply first, then publish the new route: the reply is then queued on
	// the registrant's connection ahead of any message forwarded to it, so
	// the registrant always sees the reply first. (Not under s.mu: the
	// reply may wait for room in the registrant's queue.)
	err = s.node.Route(ctx, routing.TransportMessage{
		Version: routing.Version, Onward: route, Return: routing.Route{addr}, Payload: m.Payload(),
	})
	if err != nil {
		return fmt.Errorf("forwarding: replying to %s: %w", route, err)
	}
	s.mu.Lock()
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
		f.route.Store(&route) // moved
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
	s.mu.Unlock()
	s.node.StopWorker(context.Background(), StaticPrefix+name)
}

type staticForwarder struct {
	route atomic.Pointer[routing.Route]
	// guarded by StaticService.mu:
	conn        routing.Address // the registrant's connection
	gen         uint64
	cancelWatch func() bool
}

func (f *staticForwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	tm := m.Transport()
	tm.Onward = *f.route.Load()
	return s.Forward(ctx, tm)
}
