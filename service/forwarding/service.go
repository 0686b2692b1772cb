package forwarding

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// ServiceAddress is the well-known address of the forwarding service.
const ServiceAddress = "forwarding_service"

// ErrRouteTooLong means a registration's return route is longer than a
// forwarder may keep.
var ErrRouteTooLong = errors.New("forwarding: registration route too long")

// ErrTooManyForwarders means a connection has registered as many forwarders
// as Config.MaxPerConnection allows. The service logs it (rate-limited) and
// counts it (Service.RefusedOverCap); it sends no reply, as in 2021.
var ErrTooManyForwarders = errors.New("forwarding: too many forwarders for this connection")

// AddressBytes is the randomness of a forwarder's address: 64 bits (16 hex
// digits), so that it cannot be found by probing. The Elixir Hub used 32;
// the 2021 programs treat the address as opaque.
const AddressBytes = 8

// DefaultMaxRouteBytes bounds the route a forwarder keeps: a real
// registrant's is a connection alias and a worker address, some 50 bytes.
const DefaultMaxRouteBytes = 1024

// routeBytes returns the encoded size of r.
func routeBytes(r routing.Route) int {
	m := routing.TransportMessage{Onward: r}
	return m.EncodedLen()
}

// Config configures a Service. The zero value is usable: forwarders live
// until the service stops.
type Config struct {
	// Address is the service's address; "" means forwarding_service.
	Address string
	// AfterClose, when set, ties each forwarder to the connection it was
	// registered over: it is called with the head of the registration's
	// return route and must run f once that connection has closed, returning
	// a function that cancels the call (tcp.Transport.AfterClose does).
	AfterClose func(conn routing.Address, f func()) (stop func() bool)
	// MaxPerConnection limits the forwarders registered over one connection;
	// 0 means no limit.
	MaxPerConnection int
	// MaxRouteBytes refuses registrations whose return route (which each
	// forwarder keeps) encodes to more than this; 0 means
	// DefaultMaxRouteBytes.
	MaxRouteBytes int
	// IdleTimeout removes a forwarder that has relayed nothing for this
	// long (counting from its registration); 0 means never.
	IdleTimeout time.Duration
	// Logger receives refused registrations, at most once a second; nil
	// discards.
	Logger *slog.Logger
}

// Service is the forwarding service. It is safe for concurrent use.
type Service struct {
	cfg  Config
	node *node.Node

	mu      sync.Mutex
	perCon  map[routing.Address]int
	count   atomic.Int64
	total   atomic.Uint64
	expired atomic.Uint64
	overCap atomic.Uint64
	log     *slog.Logger
	logRate rate.Sometimes

	fwds sync.Map // routing.Address -> *forwarder, for the idle janitor
	stop chan struct{}
	wg   sync.WaitGroup
}

// Start starts the forwarding service on n.
func Start(ctx context.Context, n *node.Node, cfg Config) (*Service, error) {
	if cfg.Address == "" {
		cfg.Address = ServiceAddress
	}
	s := &Service{cfg: cfg, node: n, perCon: make(map[routing.Address]int), stop: make(chan struct{})}
	if cfg.MaxRouteBytes <= 0 {
		cfg.MaxRouteBytes = DefaultMaxRouteBytes
	}
	s.cfg = cfg
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.logRate = rate.Sometimes{Interval: time.Second}
	// Registrations are handled inline, in the registrant's own connection
	// reader: a registrant that does not read its replies then slows down
	// only itself, never the service for everyone else.
	if _, err := n.StartWorkerConfig(ctx, node.HandlerFunc(s.register), node.WorkerConfig{Addresses: []string{cfg.Address}, Inline: true}); err != nil {
		return nil, err
	}
	if cfg.IdleTimeout > 0 {
		s.wg.Go(s.janitor)
	}
	return s, nil
}

// Close stops the idle janitor. Forwarders stop with their node.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Expired returns the number of forwarders removed for being idle.
func (s *Service) Expired() uint64 { return s.expired.Load() }

// janitor removes idle forwarders, checking a few times per timeout.
func (s *Service) janitor() {
	every := max(s.cfg.IdleTimeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			cutoff := now.Add(-s.cfg.IdleTimeout).UnixNano()
			s.fwds.Range(func(k, v any) bool {
				if v.(*forwarder).lastUsed.Load() < cutoff {
					s.fwds.Delete(k)
					s.expired.Add(1)
					s.node.StopWorker(context.Background(), k.(routing.Address).Value)
				}
				return true
			})
		}
	}
}

// Forwarders returns the number of live forwarders.
func (s *Service) Forwarders() int { return int(s.count.Load()) }

// RefusedOverCap returns the registrations refused because their
// connection held Config.MaxPerConnection forwarders already.
func (s *Service) RefusedOverCap() uint64 { return s.overCap.Load() }

// Registered returns the number of forwarders ever created.
func (s *Service) Registered() uint64 { return s.total.Load() }

// register handles one registration.
func (s *Service) register(ctx context.Context, _ node.Sender, m *node.Message) error {
	route := m.Return()
	if len(route) == 0 {
		return errors.New("forwarding: registration without a return route")
	}
	if routeBytes(route) > s.cfg.MaxRouteBytes {
		return fmt.Errorf("%w: return route of %d bytes (limit %d)", ErrRouteTooLong, routeBytes(route), s.cfg.MaxRouteBytes)
	}
	// The forwarder keeps its route (and the service the connection's
	// address) for as long as it lives: a copy, not the memory of the frame
	// the registration arrived in.
	route = route.Clone()
	conn := route[0]
	if s.cfg.MaxPerConnection > 0 {
		s.mu.Lock()
		if s.perCon[conn] >= s.cfg.MaxPerConnection {
			s.mu.Unlock()
			// No reply: the 2021 service has no error message, and a
			// 2021 client would take any reply for its address.
			s.overCap.Add(1)
			s.logRate.Do(func() {
				s.log.Warn("forwarder registration refused: connection at its limit",
					"conn", conn.String(), "limit", s.cfg.MaxPerConnection, "refused_total", s.overCap.Load(), "err", ErrTooManyForwarders)
			})
			return nil
		}
		s.perCon[conn]++
		s.mu.Unlock()
	}
	f := &forwarder{route: route, timed: s.cfg.IdleTimeout > 0}
	f.lastUsed.Store(time.Now().UnixNano())
	var addrs []routing.Address
	var err error
	for range 8 { // random addresses can collide; retry like the Elixir Hub
		addrs, err = s.node.StartWorkerConfig(ctx, f, node.WorkerConfig{
			Addresses: []string{node.RandomAddress(AddressBytes)},
			Inline:    true,
		})
		if !errors.Is(err, node.ErrAddressInUse) {
			break
		}
	}
	if err != nil {
		s.release(conn)
		return fmt.Errorf("forwarding: starting forwarder: %w", err)
	}
	addr := addrs[0]
	f.setOnStop(func() { s.count.Add(-1); s.release(conn); s.fwds.Delete(addr) })
	s.count.Add(1)
	s.total.Add(1)
	if s.cfg.IdleTimeout > 0 {
		s.fwds.Store(addr, f)
	}
	if s.cfg.AfterClose != nil {
		f.watch(s.cfg.AfterClose(conn, func() {
			// Runs in the connection's closing goroutine: do not block it.
			go s.node.StopWorker(context.Background(), addr.Value)
		}))
	}
	// Reply from the forwarder, so that its address arrives in the return
	// route; the payload goes back unchanged.
	return s.node.Route(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  route,
		Return:  routing.Route{addr},
		Payload: m.Payload(),
	})
}

func (s *Service) release(conn routing.Address) {
	if s.cfg.MaxPerConnection <= 0 {
		return
	}
	s.mu.Lock()
	if s.perCon[conn]--; s.perCon[conn] <= 0 {
		delete(s.perCon, conn)
	}
	s.mu.Unlock()
}

// forwarder relays everything it receives to the registrant's route.
type forwarder struct {
	route    routing.Route
	timed    bool         // the service has an idle timeout: keep lastUsed
	lastUsed atomic.Int64 // unix nanoseconds, when timed

	mu          sync.Mutex
	stopped     bool
	onStop      func()
	cancelWatch func() bool
}

// setOnStop records what to do when the forwarder stops, or does it at once
// if it already has.
func (f *forwarder) setOnStop(fn func()) {
	f.mu.Lock()
	if !f.stopped {
		f.onStop = fn
		fn = nil
	}
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// watch records how to cancel the connection watch, or cancels it at once if
// the forwarder has already stopped.
func (f *forwarder) watch(cancel func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		cancel()
		return
	}
	f.cancelWatch = cancel
}

func (f *forwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	f.Relayed() // only the idle janitor reads lastUsed: no clock per message without one
	tm := m.Transport()
	tm.Onward, _ = f.RewriteOnward(tm.Onward) // the rest of the incoming onward route is discarded
	return s.Forward(ctx, tm)
}

// RewriteOnward implements node.RouteRewriter: whatever the onward route,
// the message leaves with the registrant's (HandleMessage does nothing
// else), so a transport may relay it without calling HandleMessage.
func (f *forwarder) RewriteOnward(routing.Route) (routing.Route, bool) { return f.route, true }

// Relayed implements node.RouteRewriter: what HandleMessage does besides
// forwarding.
func (f *forwarder) Relayed() {
	if f.timed {
		f.lastUsed.Store(time.Now().UnixNano())
	}
}

func (f *forwarder) Shutdown(context.Context) error {
	f.mu.Lock()
	f.stopped = true
	cancel, onStop := f.cancelWatch, f.onStop
	f.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if onStop != nil {
		onStop()
	}
	return nil
}
