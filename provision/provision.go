package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
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
	// ErrBadToken is returned by SetForwarderToken for a token shorter
	// than MinForwarderTokenLen or longer than 256 bytes.
	ErrBadToken = errors.New("provision: a forwarder token has 16 to 256 characters")
	// ErrTooManyForwarderTokens is returned by SetForwarderToken for a new
	// name on a node that has MaxForwarderTokens tokens.
	ErrTooManyForwarderTokens = errors.New("provision: too many forwarder tokens on this node")
	// ErrRateLimited is wrapped by *RateError.
	ErrRateLimited = errors.New("provision: too many node creations")
)

// LimitError is returned by Create when the account already has Limit
// nodes. It wraps store.ErrNodeLimit.
type LimitError struct{ Limit int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("provision: node limit reached (%d per account)", e.Limit)
}

// Unwrap returns store.ErrNodeLimit.
func (e *LimitError) Unwrap() error { return store.ErrNodeLimit }

// AllowError is returned by SetAllow for an allow-list it cannot take.
type AllowError struct{ Reason string }

func (e *AllowError) Error() string { return "provision: allow-list: " + e.Reason }

// RateError is returned by Create when the account has created
// Config.MaxCreatesPerHour nodes in the last hour. It wraps ErrRateLimited.
type RateError struct {
	Limit      int           // creations allowed per hour
	RetryAfter time.Duration // until the next creation is allowed
}

func (e *RateError) Error() string {
	return fmt.Sprintf("provision: %d node creations per hour reached; try again in %s", e.Limit, e.RetryAfter.Round(time.Second))
}

// Unwrap returns ErrRateLimited.
func (e *RateError) Unwrap() error { return ErrRateLimited }

// Provisioner creates, lists and deletes an account's hub nodes. Methods
// that take an account return store.ErrNotFound for another account's node.
type Provisioner interface {
	// Create validates name (store.CheckNodeName), then creates and starts
	// a node. Errors: *store.NameError, store.ErrNameTaken, *LimitError,
	// *RateError, ErrNoPorts, ErrClosed. A node that could not start is returned with
	// StatusFailed and no error.
	Create(ctx context.Context, accountID int64, name string) (Node, error)
	// Delete stops the node and forgets it, freeing its name and port.
	// Errors: store.ErrNotFound, ErrClosed.
	Delete(ctx context.Context, accountID, id int64) error
	// Node returns one of the account's nodes with its counters.
	Node(ctx context.Context, accountID, id int64) (Node, error)
	// Nodes lists the account's nodes, oldest first, with their counters.
	Nodes(ctx context.Context, accountID int64) ([]Node, error)
	// Limit is the most nodes an account may have; 0 means no limit.
	Limit() int
	// SetAllow replaces the allow-list of one of the account's nodes
	// (empty: open to everyone) and applies it to the running node: new
	// connections from elsewhere are refused, existing ones closed.
	SetAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) (Node, error)
	// SetNamedForwarding turns the node's named forwarding
	// (static_forwarding_service) on or off and applies it.
	SetNamedForwarding(ctx context.Context, accountID, id int64, enabled bool) (Node, error)
	// SetForwarderToken sets the token that registrations of forwarder
	// name on the node must carry (store.CheckForwarderName; the store
	// keeps its hash) and applies it. A new name beyond MaxForwarderTokens
	// fails with ErrTooManyForwarderTokens.
	SetForwarderToken(ctx context.Context, accountID, id int64, name, token string) (Node, error)
	// DeleteForwarderToken removes the token of forwarder name and applies it.
	DeleteForwarderToken(ctx context.Context, accountID, id int64, name string) (Node, error)
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
	// ForwarderNames are the forwarder names that have a token, sorted.
	ForwarderNames []string
	// NextRetry is when a failed node will next be tried; zero otherwise.
	NextRetry time.Time
	// Instance is the cluster instance that runs the node; "" outside a
	// cluster.
	Instance string
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
	// MaxCreatesPerHour limits the nodes one account may create in any
	// hour (deleted ones count); 0 means DefaultMaxCreatesPerHour,
	// negative means no limit.
	MaxCreatesPerHour int
	// RetryMin and RetryMax bound the backoff between attempts to start a
	// node that failed (its port taken): the first retry comes after
	// RetryMin, each next one after twice as long, at most RetryMax.
	// Zero means DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Logger receives the provisioner's logs; nil discards.
	Logger *slog.Logger
	// Listen binds a node's port; nil means net.Listen on ListenHost.
	// A cluster's front door gives each node a listener of its own.
	Listen func(port int) (net.Listener, error)
	// Cluster, when set, decides which instance of a cluster runs each
	// node: Restore starts nothing, Create starts the node only when it
	// is placed here, and the cluster calls Adopt and Release.
	Cluster Cluster
}

// Cluster is what a Local provisioner needs from the cluster it is part of.
type Cluster interface {
	// Place records where new node n runs and reports whether it is here.
	Place(ctx context.Context, n store.Node) (here bool, err error)
	// Instance is the name of the instance that runs node id ("" unknown).
	Instance(id int64) string
	// Counters are node id's counters as its instance last published them.
	Counters(id int64) (store.NodeStats, bool)
	// Changed records that node id's settings changed, for its instance.
	Changed(ctx context.Context, id int64)
}

// Defaults of Config.
const (
	DefaultMaxCreatesPerHour = 10
	DefaultRetryMin          = 2 * time.Second
	DefaultRetryMax          = 2 * time.Minute
)

// Local runs hub nodes in this process. It is safe for concurrent use.
//
// Every change to the set of nodes (Create, Delete, Restore, a retry of a
// failed node, a settings change, Shutdown) holds opMu while it changes the
// store and the running set together, so that whenever opMu is free the
// running nodes are exactly the stored nodes that are not failed. Stopping
// a deleted node (which may wait for its connections to drain) happens
// after opMu is released: the node is already gone from both sets, and its
// port is still bound until it has stopped, so no other node can take it
// meanwhile.
type Local struct {
	cfg Config
	log *slog.Logger

	opMu sync.Mutex // serialises changes to the store and the running set

	mu      sync.Mutex // guards the fields below; never held while blocking
	closed  bool
	running map[int64]*running    // by node ID
	failed  map[int64]*retry      // stored nodes that could not start, by ID
	creates map[int64][]time.Time // creations of the last hour, by account
	// createsSweep is the size of creates that triggers the next sweep.
	createsSweep int
	retrying     bool          // the retry loop runs
	kick         chan struct{} // wakes the retry loop

	stops     sync.WaitGroup // stops of deleted nodes in flight, and the retry loop
	stopRetry chan struct{}  // closed by Shutdown
}

type running struct {
	name string
	h    *hub.Hub
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// retry is a failed node waiting for its next attempt.
type retry struct {
	node    store.Node
	next    time.Time
	backoff time.Duration // wait after the next failure
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
	if cfg.MaxCreatesPerHour == 0 {
		cfg.MaxCreatesPerHour = DefaultMaxCreatesPerHour
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{
		cfg: cfg, log: log,
		running: make(map[int64]*running), failed: make(map[int64]*retry), creates: make(map[int64][]time.Time),
		kick: make(chan struct{}, 1), stopRetry: make(chan struct{}),
	}, nil
}

// Limit implements Provisioner.
func (p *Local) Limit() int { return p.cfg.MaxNodesPerAccount }

func (p *Local) addr(port int) string {
	return net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(port))
}

// listen binds port for a node.
func (p *Local) listen(port int) (net.Listener, error) {
	if p.cfg.Listen != nil {
		return p.cfg.Listen(port)
	}
	return net.Listen("tcp", p.addr(port))
}

// checkRate returns a *RateError if accountID has used its creations of
// the last hour.
func (p *Local) checkRate(accountID int64, now time.Time) error {
	lim := p.cfg.MaxCreatesPerHour
	if lim < 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.creates[accountID]
	for len(ts) > 0 && now.Sub(ts[0]) >= time.Hour {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(p.creates, accountID)
	} else {
		p.creates[accountID] = ts
	}
	if len(ts) >= lim {
		return &RateError{Limit: lim, RetryAfter: ts[0].Add(time.Hour).Sub(now)}
	}
	return nil
}

func (p *Local) noteCreate(accountID int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creates[accountID] = append(p.creates[accountID], now)
	// checkRate forgets an account's old creations only when that account
	// creates again; accounts that never come back would stay forever.
	// Sweep when the table has doubled since the last sweep (amortised
	// constant time per creation).
	if len(p.creates) > p.createsSweep {
		for id, ts := range p.creates {
			if now.Sub(ts[len(ts)-1]) >= time.Hour {
				delete(p.creates, id)
			}
		}
		p.createsSweep = max(2*len(p.creates), minCreatesSweep)
	}
}

// minCreatesSweep is the table size below which noteCreate never sweeps.
const minCreatesSweep = 1024

// Create implements Provisioner.
func (p *Local) Create(ctx context.Context, accountID int64, name string) (Node, error) {
	if err := store.CheckNodeName(name); err != nil {
		return Node{}, err
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
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
	now := time.Now()
	if err := p.checkRate(accountID, now); err != nil {
		return Node{}, err
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
	p.noteCreate(accountID, now)
	if p.cfg.Cluster != nil {
		here, err := p.cfg.Cluster.Place(ctx, sn)
		if err != nil || !here {
			// Its instance starts it (or, on error, a live instance
			// claims it as unplaced).
			ln.Close()
			if err != nil {
				p.log.Warn("placing node", "node", sn.Name, "err", err)
			}
			return p.view(ctx, sn), nil
		}
	}
	p.start(ctx, &sn, ln, nil)
	return p.view(ctx, sn), nil
}

// listenFree binds the lowest port of the range that is not in used and
// that the OS lets us bind.
func (p *Local) listenFree(used map[int]bool) (net.Listener, int, error) {
	for port := p.cfg.Ports.First; port <= p.cfg.Ports.Last; port++ {
		if used[port] {
			continue
		}
		ln, err := p.listen(port)
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
// The caller holds opMu. prev is the node's retry state when this is a
// retry, nil otherwise.
func (p *Local) start(ctx context.Context, n *store.Node, ln net.Listener, prev *retry) {
	log := p.log.With("node", n.Name, "id", n.ID, "port", n.Port)
	cfg, err := p.hubConfig(ctx, *n)
	if err == nil {
		cfg.Logger = log
		var h *hub.Hub
		h, err = hub.New(cfg)
		if err == nil {
			p.run(ctx, n, ln, h, log)
			return
		}
	}
	ln.Close()
	log.Error("starting hub node", "err", err)
	p.fail(ctx, *n, err.Error(), prev)
}

func (p *Local) run(ctx context.Context, n *store.Node, ln net.Listener, h *hub.Hub, log *slog.Logger) {
	r := &running{name: n.Name, h: h, ln: ln, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		h.Close()
		ln.Close()
		return
	}
	p.running[n.ID] = r
	delete(p.failed, n.ID)
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
		p.opMu.Lock()
		defer p.opMu.Unlock()
		p.mu.Lock()
		stillOurs := p.running[snap.ID] == r
		if stillOurs {
			delete(p.running, snap.ID)
		}
		p.mu.Unlock()
		if stillOurs {
			p.fail(context.Background(), snap, "serve: "+err.Error(), nil)
		}
	}()
	log.Info("hub node running", "addr", ln.Addr().String())
	p.setStatus(ctx, n, store.StatusRunning, "")
}

// fail records n as failed for reason and schedules its next attempt.
// The caller holds opMu.
func (p *Local) fail(ctx context.Context, n store.Node, reason string, prev *retry) {
	p.setStatus(ctx, &n, store.StatusFailed, reason)
	backoff := p.cfg.RetryMin
	if prev != nil {
		backoff = min(prev.backoff*2, p.cfg.RetryMax)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.failed[n.ID] = &retry{node: n, next: time.Now().Add(backoff), backoff: backoff}
	if !p.retrying {
		p.retrying = true
		p.stops.Go(p.retryLoop)
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// retryLoop tries each failed node again when its time comes, until
// Shutdown.
func (p *Local) retryLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		var due []int64
		next := time.Now().Add(time.Hour)
		now := time.Now()
		for id, r := range p.failed {
			if !r.next.After(now) {
				due = append(due, id)
			} else if r.next.Before(next) {
				next = r.next
			}
		}
		p.mu.Unlock()
		for _, id := range due {
			p.retry(id)
		}
		if len(due) > 0 {
			continue // recompute: the retries rescheduled themselves
		}
		t.Reset(time.Until(next))
		select {
		case <-p.stopRetry:
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

// retry tries to start failed node id again on its port.
func (p *Local) retry(id int64) {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	r := p.failed[id]
	delete(p.failed, id)
	closed := p.closed
	_, up := p.running[id]
	p.mu.Unlock()
	if r == nil || closed || up {
		return
	}
	ctx := context.Background()
	// The node may have been deleted, or changed, since it failed.
	n, err := p.cfg.Store.Node(ctx, r.node.AccountID, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			p.log.Error("retrying hub node", "node", r.node.Name, "err", err)
			p.mu.Lock()
			r.next = time.Now().Add(r.backoff)
			p.failed[id] = r
			p.mu.Unlock()
		}
		return
	}
	ln, err := p.listen(n.Port)
	if err != nil {
		p.log.Warn("hub node still cannot start", "node", n.Name, "port", n.Port, "err", err, "next_retry", min(r.backoff*2, p.cfg.RetryMax))
		p.fail(ctx, n, err.Error(), r)
		return
	}
	p.log.Info("hub node port free again", "node", n.Name, "port", n.Port)
	p.start(ctx, &n, ln, r)
}

func (p *Local) setStatus(ctx context.Context, n *store.Node, s store.Status, reason string) {
	n.Status, n.Reason = s, reason
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusBudget)
	defer cancel()
	if err := p.cfg.Store.SetNodeStatus(sctx, n.ID, s, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.Error("recording node status", "node", n.Name, "status", s, "err", err)
	}
}

// statusBudget bounds the recording of a node's status, so that an
// unreachable database cannot hold up starting and stopping nodes.
const statusBudget = 5 * time.Second

// Restore starts every recorded node on its recorded port. A node that
// cannot listen there is recorded as failed with the reason, and retried
// with backoff (Config.RetryMin, RetryMax) until it starts or is deleted;
// Restore returns an error only if the store fails.
func (p *Local) Restore(ctx context.Context) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	if p.cfg.Cluster != nil {
		return nil // the cluster adopts this instance's nodes
	}
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
		ln, err := p.listen(n.Port)
		if err != nil {
			p.log.Error("restoring hub node", "node", n.Name, "port", n.Port, "err", err)
			p.fail(ctx, n, err.Error(), nil)
			continue
		}
		p.start(ctx, &n, ln, nil)
	}
	return nil
}

// Delete implements Provisioner. The node is gone from the store and the
// running set at once; Delete then waits for it to stop, so its port is
// free when Delete returns.
func (p *Local) Delete(ctx context.Context, accountID, id int64) error {
	p.opMu.Lock()
	if p.isClosed() {
		p.opMu.Unlock()
		return ErrClosed
	}
	if err := p.cfg.Store.DeleteNode(ctx, accountID, id); err != nil {
		p.opMu.Unlock()
		return err
	}
	p.mu.Lock()
	r := p.running[id]
	delete(p.running, id)
	delete(p.failed, id)
	if r != nil {
		p.stops.Add(1)
	}
	p.mu.Unlock()
	p.opMu.Unlock()
	if r != nil {
		defer p.stops.Done()
		p.stop(ctx, r)
	}
	return nil
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
	return p.view(ctx, n), nil
}

// Nodes implements Provisioner.
func (p *Local) Nodes(ctx context.Context, accountID int64) ([]Node, error) {
	ns, err := p.cfg.Store.Nodes(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]Node, len(ns))
	for i, n := range ns {
		out[i] = p.view(ctx, n)
	}
	return out, nil
}

// serviceAddrs are the services a hub may run, in the order shown.
var serviceAddrs = []string{"echo_service", "forwarding_service", "static_forwarding_service"}

// view adds the host name, services, counters, forwarder names and retry
// time to a stored node.
func (p *Local) view(ctx context.Context, n store.Node) Node {
	v := Node{Node: n, Hostname: Hostname(n.Name, p.cfg.Domain)}
	if p.cfg.Cluster != nil {
		v.Instance = p.cfg.Cluster.Instance(n.ID)
	}
	if toks, err := p.cfg.Store.NodeForwarderTokens(ctx, n.ID); err == nil {
		for name := range toks {
			v.ForwarderNames = append(v.ForwarderNames, name)
		}
		slices.Sort(v.ForwarderNames)
	}
	p.mu.Lock()
	r := p.running[n.ID]
	if f := p.failed[n.ID]; f != nil {
		v.NextRetry = f.next
	}
	p.mu.Unlock()
	if r == nil {
		if p.cfg.Cluster != nil {
			v.Stats, _ = p.cfg.Cluster.Counters(n.ID)
		}
		return v
	}
	for _, s := range serviceAddrs {
		if r.h.Node().HasWorker(s) {
			v.Services = append(v.Services, s)
		}
	}
	v.Stats = nodeStats(r.h)
	return v
}

// nodeStats returns h's counters as the dashboard shows them.
func nodeStats(h *hub.Hub) store.NodeStats {
	s := h.Stats()
	return store.NodeStats{
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

// Running returns the IDs of the running nodes, sorted. With Stats it lets
// tests and operators compare what runs with what is stored.
func (p *Local) Running() []int64 {
	p.mu.Lock()
	ids := make([]int64, 0, len(p.running))
	for id := range p.running {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	slices.Sort(ids)
	return ids
}

func (p *Local) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Shutdown stops every node gracefully, in parallel, within ctx; nodes
// still busy when ctx ends are closed at once. It waits for deletions in
// flight and stops retrying failed nodes. Later Creates fail with
// ErrClosed. The records are kept for the next Restore.
func (p *Local) Shutdown(ctx context.Context) error {
	p.opMu.Lock()
	p.mu.Lock()
	if !p.closed {
		close(p.stopRetry)
	}
	p.closed = true
	rs := make([]*running, 0, len(p.running))
	for id, r := range p.running {
		rs = append(rs, r)
		delete(p.running, id)
	}
	clear(p.failed)
	p.mu.Unlock()
	p.opMu.Unlock()
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
	p.stops.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("provision: shutdown: %w", errors.Join(errs...))
	}
	return nil
}
