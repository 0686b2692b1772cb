package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
)

// DB is the cluster's shared state; *pgstore.Store implements it.
type DB interface {
	RenewLease(ctx context.Context, name, addr string, d time.Duration, draining bool) (int, error)
	ExpireLease(ctx context.Context, name string) error
	Instances(ctx context.Context) ([]pgstore.Instance, error)
	Placements(ctx context.Context) ([]pgstore.Placement, error)
	PlaceNode(ctx context.Context, id int64, self string) (string, error)
	ClaimOrphans(ctx context.Context, self string, margin time.Duration, share int) (int, []int64, error)
	TakeBack(ctx context.Context, self string) error
	HandOver(ctx context.Context, id int64, from string) (string, error)
	BumpSettings(ctx context.Context, id int64) error
	PublishStats(ctx context.Context, self string, stats map[int64]store.NodeStats) error
	// WatchCluster calls changed on every announced placement change
	// until ctx ends.
	WatchCluster(ctx context.Context, changed func())
}

// Nodes runs this instance's nodes; *provision.Local implements it.
type Nodes interface {
	Adopt(ctx context.Context, accountID, id int64) error
	Release(id int64) bool
	Reapply(ctx context.Context, accountID, id int64) error
	NodeStats() map[int64]store.NodeStats
	Running() []int64
}

// Config configures a Member.
type Config struct {
	DB   DB
	Name string // the instance's name, unique in the cluster
	// Addr is the IP address other instances relay this instance's nodes'
	// connections to; relays from this instance come from it too.
	Addr string
	// ListenHost is the IP address every node's port is bound on.
	ListenHost string
	// Lease is how long a renewal keeps the instance live; 0 means
	// DefaultLease.
	Lease  time.Duration
	Logger *slog.Logger
}

// DefaultLease is Config.Lease's default.
const DefaultLease = 10 * time.Second

// Fractions of the lease: an instance that has not renewed for
// fenceAfter stops its nodes; others claim them only claimMargin after
// the lease lapsed (on the database's clock).
const (
	fenceAfter  = 0.6
	claimMargin = 0.25
)

// Stats are a Member's counters, for /metrics.
type Stats struct {
	LiveInstances int    // live instances, this one included, at the last renewal
	Nodes         int    // nodes running here
	Relayed       uint64 // connections relayed to another instance
	RelayedOpen   int64  // of which open
	Refused       uint64 // connections refused: bad or unexpected PROXY header, no owner
	ProxyRefused  uint64 // PROXY headers from clients (not a live instance's relay), each closing its connection
	HandOvers     uint64 // nodes handed to another instance on shutdown
	Claimed       uint64 // nodes claimed from instances whose lease lapsed
	Fenced        bool   // nodes stopped because the lease could not be renewed
}

// Member is this instance's part in a cluster: it renews the lease,
// places, claims and hands over nodes, and runs the front door that
// listens on every node's port and serves or relays each connection.
type Member struct {
	cfg  Config
	log  *slog.Logger
	dial net.Dialer
	self netip.Addr

	nodes Nodes

	mu        sync.Mutex
	doors     map[int]*door
	place     map[int64]pgstore.Placement // by node ID
	byPort    map[int]int64
	addrs     map[string]string // live instances' addresses, by name
	peers     map[netip.Addr]bool
	applied   map[int64]int64     // settings seq applied, by node ID
	startedAt map[int64]time.Time // when this instance started a node
	closed    bool

	fmu       sync.Mutex // guards the lease state
	lastRenew time.Time  // when the last successful renewal was sent
	alone     bool       // no other live instance at the last renewal
	fenced    bool
	draining  atomic.Bool

	live                                 atomic.Int64
	relayed, refused, handOvers, claimed atomic.Uint64
	proxyRefused                         atomic.Uint64
	relayedOpen                          atomic.Int64
	acceptLog                            rate.Sometimes // node port accept failures
	lastPublish                          time.Time
	stopLoop                             context.CancelFunc
	loopDone, watchDone                  chan struct{}
	kick                                 chan struct{}
	conns                                sync.WaitGroup
}

type door struct {
	port  int
	ln    net.Listener
	stop  chan struct{} // closed with ln
	local *vlistener    // the node, when it runs here
}

// close closes the door's listener and ends its accept loop's backoff.
func (d *door) close() {
	d.ln.Close()
	close(d.stop)
}

// New returns a Member; call Attach, then Start.
func New(cfg Config) (*Member, error) {
	if cfg.DB == nil || cfg.Name == "" {
		return nil, errors.New("cluster: Config.DB and Config.Name are required")
	}
	self, err := netip.ParseAddr(cfg.Addr)
	if err != nil || self.IsUnspecified() {
		return nil, fmt.Errorf("cluster: cluster address %q is not an IP address of this machine", cfg.Addr)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Member{
		cfg: cfg, log: log.With("instance", cfg.Name), self: self.Unmap(),
		dial:  net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IP(self.AsSlice())}},
		doors: map[int]*door{}, place: map[int64]pgstore.Placement{}, byPort: map[int]int64{},
		addrs: map[string]string{}, peers: map[netip.Addr]bool{}, applied: map[int64]int64{}, startedAt: map[int64]time.Time{},
		acceptLog: rate.Sometimes{Interval: time.Second},
	}
	return m, nil
}

// Attach gives the Member the nodes it runs.
func (m *Member) Attach(n Nodes) { m.nodes = n }

func (m *Member) tick() time.Duration { return max(m.cfg.Lease/8, 50*time.Millisecond) }

func (m *Member) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(m.cfg.Lease/4, 200*time.Millisecond))
}

// Start registers the instance, takes back the nodes still placed on it
// and starts renewing, placing and claiming in the background.
func (m *Member) Start(ctx context.Context) error {
	sent := time.Now()
	others, err := m.cfg.DB.RenewLease(ctx, m.cfg.Name, m.cfg.Addr, m.cfg.Lease, false)
	if err != nil {
		return err
	}
	m.renewed(sent, others)
	if err := m.cfg.DB.TakeBack(ctx, m.cfg.Name); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopLoop = cancel
	m.loopDone, m.watchDone = make(chan struct{}), make(chan struct{})
	m.kick = make(chan struct{}, 1)
	m.step(lctx)
	go m.loop(lctx)
	go m.watch(lctx)
	go m.cfg.DB.WatchCluster(lctx, func() {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	})
	m.log.Info("joined cluster", "addr", m.cfg.Addr, "lease", m.cfg.Lease, "other_live_instances", others)
	return nil
}

func (m *Member) renewed(sent time.Time, others int) {
	m.fmu.Lock()
	m.lastRenew, m.alone = sent, others == 0
	if m.fenced {
		m.log.Info("lease renewed again: serving nodes")
	}
	m.fenced = false
	m.fmu.Unlock()
	m.live.Store(int64(others + 1))
}

// leaseOK reports whether this instance may run nodes now.
func (m *Member) leaseOK() bool {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	return m.alone || time.Since(m.lastRenew) < time.Duration(fenceAfter*float64(m.cfg.Lease))
}

func (m *Member) loop(ctx context.Context) {
	defer close(m.loopDone)
	t := time.NewTicker(m.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.kick: // a placement changed: act now
		}
		m.step(ctx)
	}
}

// watch stops every node while the lease may be lapsing (unless this
// instance was alone), independently of the loop, which may be stuck on
// the database.
func (m *Member) watch(ctx context.Context) {
	defer close(m.watchDone)
	t := time.NewTicker(max(m.cfg.Lease/20, 20*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.leaseOK() {
			continue
		}
		m.fmu.Lock()
		first := !m.fenced
		m.fenced = true
		m.fmu.Unlock()
		n := 0
		for _, id := range m.nodes.Running() {
			if m.nodes.Release(id) {
				n++
			}
		}
		if first || n > 0 {
			m.log.Warn("lease not renewed: stopped this instance's nodes before another instance may claim them", "stopped", n)
		}
	}
}

// step renews the lease, claims orphaned nodes, refreshes the placement
// and starts, stops and updates this instance's nodes to match it.
func (m *Member) step(ctx context.Context) {
	draining := m.draining.Load()
	sent := time.Now()
	octx, cancel := m.opCtx(ctx)
	others, err := m.cfg.DB.RenewLease(octx, m.cfg.Name, m.cfg.Addr, m.cfg.Lease, draining)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Debug("renewing lease", "err", err)
		}
		return
	}
	m.renewed(sent, others)
	if !draining {
		octx, cancel := m.opCtx(ctx)
		_, claimed, err := m.cfg.DB.ClaimOrphans(octx, m.cfg.Name, time.Duration(claimMargin*float64(m.cfg.Lease)), others+1)
		cancel()
		if err != nil {
			m.log.Debug("claiming nodes", "err", err)
		} else if len(claimed) > 0 {
			m.claimed.Add(uint64(len(claimed)))
			m.log.Info("claimed nodes of a lapsed instance", "nodes", claimed)
		}
	}
	octx, cancel = m.opCtx(ctx)
	snap := time.Now()
	ps, err1 := m.cfg.DB.Placements(octx)
	ins, err2 := m.cfg.DB.Instances(octx)
	cancel()
	if err := errors.Join(err1, err2); err != nil {
		m.log.Debug("reading placements", "err", err)
		return
	}
	m.refresh(ps, ins, snap)
	if draining {
		return
	}
	m.reconcile(ctx, ps, snap)
	if time.Since(m.lastPublish) >= 2*time.Second {
		m.lastPublish = time.Now()
		octx, cancel := m.opCtx(ctx)
		if err := m.cfg.DB.PublishStats(octx, m.cfg.Name, m.nodes.NodeStats()); err != nil {
			m.log.Debug("publishing counters", "err", err)
		}
		cancel()
	}
}

// refresh replaces the cached placement and instances and binds the
// ports of new nodes.
func (m *Member) refresh(ps []pgstore.Placement, ins []pgstore.Instance, snap time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// A node Place recorded after the snapshot was read is not in ps yet:
	// keep it, or the API would answer its creation without an instance.
	var recent []pgstore.Placement
	for id, p := range m.place {
		if !m.startedAt[id].Before(snap) {
			recent = append(recent, p)
		}
	}
	clear(m.addrs)
	clear(m.peers)
	for _, in := range ins {
		if !in.Live {
			continue
		}
		m.addrs[in.Name] = in.Addr
		if a, err := netip.ParseAddr(in.Addr); err == nil && in.Name != m.cfg.Name {
			m.peers[a.Unmap()] = true
		}
	}
	clear(m.place)
	clear(m.byPort)
	for _, p := range recent {
		m.place[p.NodeID] = p
		m.byPort[p.Port] = p.NodeID
	}
	for _, p := range ps {
		if r, ok := m.place[p.NodeID]; ok && p.Instance == "" && r.Instance != "" {
			// Read before Place's commit (the node's row was there, its
			// placement not yet): what Place recorded since is newer.
			p = r
		}
		m.place[p.NodeID] = p
		m.byPort[p.Port] = p.NodeID
		if m.closed {
			continue
		}
		if _, ok := m.doors[p.Port]; !ok {
			if _, err := m.bindLocked(p.Port); err != nil {
				m.log.Warn("cannot listen on a node's port", "port", p.Port, "err", err)
			}
		}
	}
	for port, d := range m.doors {
		if _, ok := m.byPort[port]; !ok && d.local == nil {
			d.close()
			delete(m.doors, port)
		}
	}
}

// reconcile starts the nodes placed here and stops those placed elsewhere
// or deleted.
func (m *Member) reconcile(ctx context.Context, ps []pgstore.Placement, snap time.Time) {
	running := map[int64]bool{}
	for _, id := range m.nodes.Running() {
		running[id] = true
	}
	want := map[int64]pgstore.Placement{}
	for _, p := range ps {
		if p.Instance == m.cfg.Name {
			want[p.NodeID] = p
		}
	}
	m.mu.Lock()
	var stop []int64
	for id := range running {
		p, ok := m.place[id]
		if ok && p.Instance != m.cfg.Name && p.Instance != "" || !ok && m.startedAt[id].Before(snap) {
			stop = append(stop, id)
		}
	}
	m.mu.Unlock()
	for _, id := range stop {
		if m.nodes.Release(id) {
			m.log.Info("node moved to another instance: stopped it here", "node_id", id)
		}
	}
	for id, p := range want {
		if running[id] {
			m.mu.Lock()
			seq, ok := m.applied[id]
			m.applied[id] = p.SettingsSeq
			m.mu.Unlock()
			if ok && seq != p.SettingsSeq {
				octx, cancel := m.opCtx(ctx)
				if err := m.nodes.Reapply(octx, p.AccountID, id); err != nil {
					m.log.Warn("applying changed node settings", "node_id", id, "err", err)
				}
				cancel()
			}
			continue
		}
		if !m.leaseOK() {
			return
		}
		m.mu.Lock()
		m.startedAt[id] = time.Now()
		m.applied[id] = p.SettingsSeq
		m.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.nodes.Adopt(actx, p.AccountID, id)
		cancel()
		if err != nil {
			m.log.Warn("starting node placed here", "node_id", id, "err", err)
		}
	}
}

// bindLocked binds port on ListenHost and starts its accept loop.
func (m *Member) bindLocked(port int) (*door, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(m.cfg.ListenHost, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	d := &door{port: port, ln: ln, stop: make(chan struct{})}
	m.doors[port] = d
	m.conns.Add(1)
	go m.accept(d)
	return d, nil
}

// Listen gives a node started here the connections of its port (binding
// it if no node had it yet): provision.Config.Listen.
func (m *Member) Listen(port int) (net.Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, net.ErrClosed
	}
	d := m.doors[port]
	if d == nil {
		var err error
		if d, err = m.bindLocked(port); err != nil {
			return nil, err
		}
	}
	if d.local != nil {
		return nil, fmt.Errorf("cluster: port %d: %w", port, syscall.EADDRINUSE)
	}
	v := &vlistener{addr: d.ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	v.drop = func() {
		m.mu.Lock()
		if d.local == v {
			d.local = nil
		}
		m.mu.Unlock()
	}
	d.local = v
	return v, nil
}

func (m *Member) accept(d *door) {
	defer m.conns.Done()
	var delay time.Duration
	for {
		c, err := d.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors (EMFILE, ENFILE): back off as the
			// transport does, logging at most once a second.
			delay = backoff.NextAccept(delay)
			m.acceptLog.Do(func() { m.log.Warn("node port accept failed; backing off", "port", d.port, "err", err, "delay", delay) })
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-d.stop:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		go m.serveConn(d, c)
	}
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// serveConn serves c here if its node runs here, or relays it to the
// instance that runs it. A connection relayed by another instance (with a
// PROXY header) is served here or refused, never relayed again.
func (m *Member) serveConn(d *door, c net.Conn) {
	src := addrIP(c.RemoteAddr())
	m.mu.Lock()
	peer := m.peers[src]
	m.mu.Unlock()
	var g *guardConn
	relayed := false
	if peer {
		var err error
		if g, relayed, err = readProxy(c); err != nil {
			m.refused.Add(1)
			c.Close()
			return
		}
	} else {
		g = &guardConn{Conn: c, r: c}
	}
	g.refused = func() { m.proxyRefused.Add(1) }
	m.mu.Lock()
	local := d.local
	var owner, addr string
	if id, ok := m.byPort[d.port]; ok {
		owner = m.place[id].Instance
		addr = m.addrs[owner]
	}
	m.mu.Unlock()
	if local != nil && local.deliver(g) {
		return
	}
	if relayed || owner == "" || owner == m.cfg.Name || addr == "" {
		m.refused.Add(1)
		c.Close()
		return
	}
	o, err := m.dial.Dial("tcp", net.JoinHostPort(addr, strconv.Itoa(d.port)))
	if err != nil {
		m.refused.Add(1)
		c.Close()
		return
	}
	h := proxyproto.HeaderProxyFromAddrs(2, g.RemoteAddr(), c.LocalAddr())
	if _, err := h.WriteTo(o); err != nil {
		o.Close()
		c.Close()
		return
	}
	m.relayed.Add(1)
	m.relayedOpen.Add(1)
	defer m.relayedOpen.Add(-1)
	// Copied in user space: relaying the sockets themselves (kernel
	// splice) measured no faster for small messages (docs/benchmarks.md).
	relay(g, o)
}

// Place implements provision.Cluster: it places new node n on the live
// instance with the fewest nodes.
func (m *Member) Place(ctx context.Context, n store.Node) (bool, error) {
	m.mu.Lock()
	m.startedAt[n.ID] = time.Now()
	m.mu.Unlock()
	where, err := m.cfg.DB.PlaceNode(ctx, n.ID, m.cfg.Name)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	m.startedAt[n.ID] = time.Now() // after the commit: a snapshot older than this may lack it
	m.place[n.ID] = pgstore.Placement{NodeID: n.ID, AccountID: n.AccountID, Port: n.Port, Instance: where, Epoch: 1}
	m.byPort[n.Port] = n.ID
	m.mu.Unlock()
	return where == m.cfg.Name && m.leaseOK(), nil
}

// Instance implements provision.Cluster.
func (m *Member) Instance(id int64) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.place[id].Instance
}

// Counters implements provision.Cluster.
func (m *Member) Counters(id int64) (store.NodeStats, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.place[id]
	return p.Stats, ok
}

// Changed implements provision.Cluster.
func (m *Member) Changed(ctx context.Context, id int64) {
	if err := m.cfg.DB.BumpSettings(ctx, id); err != nil {
		m.log.Warn("recording changed node settings", "node_id", id, "err", err)
	}
}

// Stats returns the Member's counters.
func (m *Member) Stats() Stats {
	m.fmu.Lock()
	fenced := m.fenced
	m.fmu.Unlock()
	return Stats{
		LiveInstances: int(m.live.Load()), Nodes: len(m.nodes.Running()),
		Relayed: m.relayed.Load(), RelayedOpen: m.relayedOpen.Load(), Refused: m.refused.Load(),
		ProxyRefused: m.proxyRefused.Load(),
		HandOvers:    m.handOvers.Load(), Claimed: m.claimed.Load(), Fenced: fenced,
	}
}

// Leave hands every node running here to another live instance (each is
// stopped here first, then placed there, so that it never runs twice) and
// ends this instance's lease. Nodes no other instance can take stay
// placed here, for this instance's next start (or for an instance that
// claims them). The front door keeps relaying until Close.
func (m *Member) Leave(ctx context.Context) {
	m.draining.Store(true)
	if m.stopLoop != nil {
		m.stopLoop()
		<-m.loopDone
		<-m.watchDone
	}
	octx, cancel := m.opCtx(ctx)
	_, err := m.cfg.DB.RenewLease(octx, m.cfg.Name, m.cfg.Addr, m.cfg.Lease, true)
	cancel()
	if err != nil {
		m.log.Warn("cannot reach the database to hand nodes over: they fail over when the lease lapses", "err", err)
		for _, id := range m.nodes.Running() {
			m.nodes.Release(id)
		}
		return
	}
	for _, id := range m.nodes.Running() {
		m.nodes.Release(id)
		octx, cancel := m.opCtx(ctx)
		to, err := m.cfg.DB.HandOver(octx, id, m.cfg.Name)
		cancel()
		switch {
		case err != nil:
			m.log.Warn("handing node over", "node_id", id, "err", err)
		case to == "":
			m.log.Info("no other live instance to hand the node to: it stays placed here", "node_id", id)
		default:
			m.handOvers.Add(1)
			m.log.Info("handed node over", "node_id", id, "to", to)
			m.mu.Lock()
			p := m.place[id]
			p.Instance = to
			m.place[id] = p
			m.mu.Unlock()
		}
	}
	octx, cancel = m.opCtx(ctx)
	if err := m.cfg.DB.ExpireLease(octx, m.cfg.Name); err != nil {
		m.log.Warn("ending lease", "err", err)
	}
	cancel()
}

// Close stops the front door: every node's port, and the relays.
func (m *Member) Close() {
	if m.stopLoop != nil {
		m.stopLoop()
		<-m.loopDone
		<-m.watchDone
	}
	m.mu.Lock()
	m.closed = true
	for port, d := range m.doors {
		d.close()
		delete(m.doors, port)
	}
	m.mu.Unlock()
	m.conns.Wait()
}
