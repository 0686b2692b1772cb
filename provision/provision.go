package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/store"
)

// Errors of a Provisioner, besides those of package store (ErrNotFound,
// ErrNameTaken, *store.NameError).
var (
	// ErrNoPorts is returned by Create when every port in the range is
	// taken by a node or by another program.
	ErrNoPorts = errors.New("provision: no free port left in the node port range")
	// ErrClosed is returned by Create after Shutdown.
	ErrClosed = errors.New("provision: shut down")
)

// LimitError is returned by Create when the account already has Limit
// nodes. It wraps store.ErrNodeLimit.
type LimitError struct{ Limit int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("provision: node limit reached (%d per account)", e.Limit)
}

// Unwrap returns store.ErrNodeLimit.
func (e *LimitError) Unwrap() error { return store.ErrNodeLimit }

// Provisioner creates, lists and deletes an account's hub nodes. Methods
// that take an account return store.ErrNotFound for another account's node.
type Provisioner interface {
	// Create validates name (store.CheckNodeName), then creates and starts
	// a node. Errors: *store.NameError, store.ErrNameTaken, *LimitError,
	// ErrNoPorts, ErrClosed. A node that could not start is returned with
	// StatusFailed and no error.
	Create(ctx context.Context, accountID int64, name string) (Node, error)
	// Delete stops the node and forgets it, freeing its name and port.
	Delete(ctx context.Context, accountID, id int64) error
	// Node returns one of the account's nodes with its counters.
	Node(ctx context.Context, accountID, id int64) (Node, error)
	// Nodes lists the account's nodes, oldest first, with their counters.
	Nodes(ctx context.Context, accountID int64) ([]Node, error)
	// Limit is the most nodes an account may have; 0 means no limit.
	Limit() int
}

// Node is a hub node as its owner sees it.
type Node struct {
	store.Node
	// Hostname is the host users connect to (see Config.Domain).
	Hostname string
	// Services are the addresses of the services the node runs.
	Services []string
	// Stats are the node's counters; zero unless it is running.
	Stats store.NodeStats
}

// Address is host:port to connect to, as a route's TCP hop takes it.
func (n Node) Address() string { return net.JoinHostPort(n.Hostname, strconv.Itoa(n.Port)) }

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ First, Last int }

// ParsePortRange parses "4001-4999" (or a single port, "4001").
func ParsePortRange(s string) (PortRange, error) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		b = a
	}
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || first < 1 || last > 65535 || first > last {
		return PortRange{}, fmt.Errorf("provision: bad port range %q: want FIRST-LAST with 1 <= FIRST <= LAST <= 65535", s)
	}
	return PortRange{first, last}, nil
}

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// Hostname returns the host name users connect to for node name under
// domain: the domain itself when it is an IP address (every node then
// shares it and differs by port), NAME.DOMAIN otherwise.
func Hostname(name, domain string) string {
	if domain == "" || net.ParseIP(strings.Trim(domain, "[]")) != nil {
		return strings.Trim(domain, "[]")
	}
	return name + "." + domain
}

// Config configures a Local provisioner.
type Config struct {
	// Store records nodes. Required.
	Store store.Store
	// Hub configures every node (limits, timeouts); Logger is replaced by
	// Logger with the node's name and port.
	Hub hub.Config
	// ListenHost is the host nodes listen on: an IP address, or "" for all
	// interfaces.
	ListenHost string
	// Domain makes the host names shown to users (see Hostname); ""
	// means ListenHost, or 127.0.0.1 if that is "" or unspecified.
	Domain string
	// Ports is the range new nodes get their port from. Required.
	Ports PortRange
	// MaxNodesPerAccount limits each account's nodes; 0 means no limit.
	MaxNodesPerAccount int
	// Logger receives the provisioner's logs; nil discards.
	Logger *slog.Logger
}

// Local runs hub nodes in this process. It is safe for concurrent use.
type Local struct {
	cfg Config
	log *slog.Logger

	createMu sync.Mutex // serializes port choice and insertion

	mu      sync.Mutex
	closed  bool
	running map[int64]*running // by node ID
}

type running struct {
	name string
	h    *hub.Hub
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

var _ Provisioner = (*Local)(nil)

// New returns a Local provisioner. Call Restore to start the recorded
// nodes and Shutdown to stop them.
func New(cfg Config) (*Local, error) {
	if cfg.Store == nil {
		return nil, errors.New("provision: Config.Store is required")
	}
	if cfg.Ports.First < 1 || cfg.Ports.Last > 65535 || cfg.Ports.First > cfg.Ports.Last {
		return nil, fmt.Errorf("provision: bad port range %s", cfg.Ports)
	}
	if cfg.Domain == "" {
		cfg.Domain = cfg.ListenHost
		if ip := net.ParseIP(cfg.Domain); cfg.Domain == "" || ip != nil && ip.IsUnspecified() {
			cfg.Domain = "127.0.0.1"
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{cfg: cfg, log: log, running: make(map[int64]*running)}, nil
}

// Limit implements Provisioner.
func (p *Local) Limit() int { return p.cfg.MaxNodesPerAccount }

func (p *Local) addr(port int) string {
	return net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(port))
}

// Create implements Provisioner.
func (p *Local) Create(ctx context.Context, accountID int64, name string) (Node, error) {
	if err := store.CheckNodeName(name); err != nil {
		return Node{}, err
	}
	p.createMu.Lock()
	defer p.createMu.Unlock()
	if p.isClosed() {
		return Node{}, ErrClosed
	}
	// Cheap checks first, so a user at the limit hears about the limit
	// rather than about ports; CreateNode checks both again atomically.
	mine, err := p.cfg.Store.Nodes(ctx, accountID)
	if err != nil {
		return Node{}, err
	}
	if lim := p.cfg.MaxNodesPerAccount; lim > 0 && len(mine) >= lim {
		return Node{}, &LimitError{lim}
	}
	all, err := p.cfg.Store.AllNodes(ctx)
	if err != nil {
		return Node{}, err
	}
	used := make(map[int]bool, len(all))
	for _, n := range all {
		if n.Name == name {
			return Node{}, store.ErrNameTaken
		}
		used[n.Port] = true
	}
	ln, port, err := p.listenFree(used)
	if err != nil {
		return Node{}, err
	}
	sn, err := p.cfg.Store.CreateNode(ctx, store.Node{AccountID: accountID, Name: name, Port: port, Status: store.StatusStarting}, p.cfg.MaxNodesPerAccount)
	if err != nil {
		ln.Close()
		if errors.Is(err, store.ErrNodeLimit) {
			return Node{}, &LimitError{p.cfg.MaxNodesPerAccount}
		}
		return Node{}, err
	}
	p.start(ctx, &sn, ln)
	return p.view(sn), nil
}

// listenFree binds the lowest port of the range that is not in used and
// that the OS lets us bind.
func (p *Local) listenFree(used map[int]bool) (net.Listener, int, error) {
	for port := p.cfg.Ports.First; port <= p.cfg.Ports.Last; port++ {
		if used[port] {
			continue
		}
		ln, err := net.Listen("tcp", p.addr(port))
		if err == nil {
			return ln, port, nil
		}
		if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) {
			continue // another program has it; try the next
		}
		return nil, 0, fmt.Errorf("provision: %w", err)
	}
	return nil, 0, ErrNoPorts
}

// start runs a hub for n on ln and records the outcome in n and the store.
func (p *Local) start(ctx context.Context, n *store.Node, ln net.Listener) {
	log := p.log.With("node", n.Name, "id", n.ID, "port", n.Port)
	cfg := p.cfg.Hub
	cfg.Logger = log
	h, err := hub.New(cfg)
	if err != nil {
		ln.Close()
		p.setStatus(ctx, n, store.StatusFailed, err.Error())
		return
	}
	r := &running{name: n.Name, h: h, ln: ln, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		h.Close()
		ln.Close()
		return
	}
	p.running[n.ID] = r
	p.mu.Unlock()
	snap := *n
	go func() {
		defer close(r.done)
		err := h.Serve(ln)
		ln.Close()
		if errors.Is(err, hub.ErrClosed) {
			return
		}
		// The listener failed on its own: the node is down.
		log.Error("hub node stopped", "err", err)
		h.Close()
		p.mu.Lock()
		stillOurs := p.running[snap.ID] == r
		if stillOurs {
			delete(p.running, snap.ID)
		}
		p.mu.Unlock()
		if stillOurs {
			p.setStatus(context.Background(), &snap, store.StatusFailed, "serve: "+err.Error())
		}
	}()
	log.Info("hub node running", "addr", ln.Addr().String())
	p.setStatus(ctx, n, store.StatusRunning, "")
}

func (p *Local) setStatus(ctx context.Context, n *store.Node, s store.Status, reason string) {
	n.Status, n.Reason = s, reason
	if err := p.cfg.Store.SetNodeStatus(context.WithoutCancel(ctx), n.ID, s, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.Error("recording node status", "node", n.Name, "status", s, "err", err)
	}
}

// Restore starts every recorded node on its recorded port. A node that
// cannot listen there is recorded as failed with the reason; Restore
// returns an error only if the store fails.
func (p *Local) Restore(ctx context.Context) error {
	nodes, err := p.cfg.Store.AllNodes(ctx)
	if err != nil {
		return fmt.Errorf("provision: restore: %w", err)
	}
	for _, n := range nodes {
		p.mu.Lock()
		_, up := p.running[n.ID]
		p.mu.Unlock()
		if up {
			continue
		}
		p.setStatus(ctx, &n, store.StatusStarting, "")
		ln, err := net.Listen("tcp", p.addr(n.Port))
		if err != nil {
			p.log.Error("restoring hub node", "node", n.Name, "port", n.Port, "err", err)
			p.setStatus(ctx, &n, store.StatusFailed, err.Error())
			continue
		}
		p.start(ctx, &n, ln)
	}
	return nil
}

// Delete implements Provisioner.
func (p *Local) Delete(ctx context.Context, accountID, id int64) error {
	if _, err := p.cfg.Store.Node(ctx, accountID, id); err != nil {
		return err
	}
	p.mu.Lock()
	r := p.running[id]
	delete(p.running, id)
	p.mu.Unlock()
	if r != nil {
		p.stop(ctx, r)
	}
	return p.cfg.Store.DeleteNode(ctx, accountID, id)
}

// stopBudget bounds how long Delete waits for a node to drain.
const stopBudget = 5 * time.Second

// stop shuts r down gracefully within ctx and stopBudget, then waits for
// its listener to be closed.
func (p *Local) stop(ctx context.Context, r *running) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopBudget)
	defer cancel()
	if err := r.h.Shutdown(ctx); err != nil {
		r.h.Close()
	}
	r.ln.Close() // in case Serve has not started yet
	<-r.done
}

// Node implements Provisioner.
func (p *Local) Node(ctx context.Context, accountID, id int64) (Node, error) {
	n, err := p.cfg.Store.Node(ctx, accountID, id)
	if err != nil {
		return Node{}, err
	}
	return p.view(n), nil
}

// Nodes implements Provisioner.
func (p *Local) Nodes(ctx context.Context, accountID int64) ([]Node, error) {
	ns, err := p.cfg.Store.Nodes(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]Node, len(ns))
	for i, n := range ns {
		out[i] = p.view(n)
	}
	return out, nil
}

// serviceAddrs are the services a hub may run, in the order shown.
var serviceAddrs = []string{"echo_service", "forwarding_service", "static_forwarding_service"}

// view adds the host name, services and counters to a stored node.
func (p *Local) view(n store.Node) Node {
	v := Node{Node: n, Hostname: Hostname(n.Name, p.cfg.Domain)}
	p.mu.Lock()
	r := p.running[n.ID]
	p.mu.Unlock()
	if r == nil {
		return v
	}
	for _, s := range serviceAddrs {
		if r.h.Node().HasWorker(s) {
			v.Services = append(v.Services, s)
		}
	}
	s := r.h.Stats()
	v.Stats = store.NodeStats{
		Conns:                s.TCP.Conns,
		Accepted:             s.TCP.Accepted,
		Forwarders:           s.Forwarders,
		ForwardersRegistered: s.ForwardersRegistered,
		MessagesIn:           s.TCP.FramesIn,
		MessagesOut:          s.TCP.FramesOut,
		BytesIn:              s.TCP.BytesIn,
		BytesOut:             s.TCP.BytesOut,
		Dropped:              s.TCP.Unroutable + s.TCP.NoConnection + s.TCP.QueueFull + s.TCP.TooLarge,
	}
	return v
}

// Stats returns the counters of every running node, by node name (node
// names are unique). The metrics endpoint reads them, as the dashboard does.
func (p *Local) Stats() map[string]hub.Stats {
	p.mu.Lock()
	hubs := make(map[string]*hub.Hub, len(p.running))
	for _, r := range p.running {
		hubs[r.name] = r.h
	}
	p.mu.Unlock()
	out := make(map[string]hub.Stats, len(hubs))
	for name, h := range hubs {
		out[name] = h.Stats()
	}
	return out
}

func (p *Local) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Shutdown stops every node gracefully, in parallel, within ctx; nodes
// still busy when ctx ends are closed at once. Later Creates fail with
// ErrClosed. The records are kept for the next Restore.
func (p *Local) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	rs := make([]*running, 0, len(p.running))
	for id, r := range p.running {
		rs = append(rs, r)
		delete(p.running, id)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	var errs []error
	var emu sync.Mutex
	for _, r := range rs {
		wg.Go(func() {
			if err := r.h.Shutdown(ctx); err != nil {
				r.h.Close()
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
			r.ln.Close()
			<-r.done
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("provision: shutdown: %w", errors.Join(errs...))
	}
	return nil
}
