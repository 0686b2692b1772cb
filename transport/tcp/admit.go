package tcp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Budget is a connection budget shared by several transports (every hub
// node of one process), so that together they never hold more connections
// than the process can afford in file descriptors. A transport whose
// Config.Budget is set takes one unit per connection and gives it back when
// the connection closes; a connection that finds the budget spent is closed
// at once and counted. It is safe for concurrent use; create it with
// NewBudget (the zero value admits nothing).
type Budget struct {
	limit     int64
	used      atomic.Int64
	perSource int // 0: no per-source share

	mu    sync.Mutex
	bySrc map[string]int // units held per source; guarded by mu
}

// NewBudget returns a budget of n connections; n <= 0 admits none.
func NewBudget(n int) *Budget { return &Budget{limit: int64(max(n, 0))} }

// LimitPerSource bounds the units one source (an IPv4 address or an IPv6
// /64, as Config.MaxConnsPerIP counts) may hold across every transport
// sharing the budget, so that one address connecting to many nodes cannot
// spend it all (MaxConnsPerIP bounds it per node only). n <= 0 means no
// bound. Call it before the budget is in use; it returns b.
func (b *Budget) LimitPerSource(n int) *Budget {
	b.perSource = max(n, 0)
	b.bySrc = make(map[string]int)
	return b
}

// Limit returns the size of the budget.
func (b *Budget) Limit() int { return int(b.limit) }

// InUse returns the connections currently holding a unit.
func (b *Budget) InUse() int { return int(b.used.Load()) }

// acquire takes a unit for a connection from src ("" for one this process
// dialled, which no per-source bound applies to).
func (b *Budget) acquire(src string) bool {
	if b.used.Add(1) > b.limit {
		b.used.Add(-1)
		return false
	}
	if b.perSource > 0 && src != "" {
		b.mu.Lock()
		if b.bySrc[src] >= b.perSource {
			b.mu.Unlock()
			b.used.Add(-1)
			return false
		}
		b.bySrc[src]++
		b.mu.Unlock()
	}
	return true
}

func (b *Budget) release(src string) {
	if b.perSource > 0 && src != "" {
		b.mu.Lock()
		if b.bySrc[src]--; b.bySrc[src] <= 0 {
			delete(b.bySrc, src)
		}
		b.mu.Unlock()
	}
	b.used.Add(-1)
}

// allowList is an immutable set of admitted source networks; nil or empty
// admits everyone.
type allowList []netip.Prefix

// newAllowList copies prefixes, masked, with IPv4-mapped IPv6 prefixes
// turned into IPv4 ones, so that Contains works on unmapped peer addresses.
func newAllowList(prefixes []netip.Prefix) allowList {
	out := make(allowList, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out
}

// admits reports whether a peer at ip may connect. An invalid ip (a
// connection that is not TCP) is admitted only by an empty list.
func (l allowList) admits(ip netip.Addr) bool {
	if len(l) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// sourceKey names the source that MaxConnsPerIP counts: the IPv4 address,
// or the /64 of an IPv6 address (one subscriber's network: an attacker has
// 2^64 addresses in it), or the host part of name if ip is not valid.
func sourceKey(ip netip.Addr, name string) string {
	switch {
	case ip.Is4():
		return ip.String()
	case ip.Is6():
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	host, _, _ := net.SplitHostPort(name)
	return host
}

// peerIP returns the IP address of nc's remote end, or the zero Addr.
func peerIP(nc net.Conn) netip.Addr {
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
}

// SetAllow replaces the allow-list (Config.Allow): new connections are
// checked against it at accept, and open accepted connections from a
// network it no longer admits are closed and counted. An empty list admits
// everyone. Dialled connections are never checked.
func (t *Transport) SetAllow(allow []netip.Prefix) {
	l := newAllowList(allow)
	t.allow.Store(&l)
	t.conns.Range(func(_, v any) bool {
		c := v.(*conn)
		if c.accepted && !l.admits(c.peer) && !c.isClosed() {
			t.stats.allowClosed.Add(1)
			c.close(ErrNotAllowed)
		}
		return true
	})
}

func (t *Transport) admits(ip netip.Addr) bool {
	if l := t.allow.Load(); l != nil {
		return l.admits(ip)
	}
	return true
}

// Defaults of the probe damping a hub turns on (Config.ProbeBurst and
// following).
const (
	DefaultProbeBurst   = 100
	DefaultProbeRate    = 10
	DefaultProbeDelay   = 200 * time.Millisecond
	DefaultProbeStrikes = 20
)

// miss records that a message read from c named an address that does not
// exist (an unknown worker, a TCP hop with no connection). Within
// Config.ProbeBurst and ProbeRate it costs nothing; beyond, each miss holds
// the reader for ProbeDelay (a strike), and the strike after ProbeStrikes
// closes the connection. Strikes are forgiven once the bucket is full again.
// It reports whether the connection is still open. Only the reader calls it.
func (c *conn) miss() bool {
	t := c.t
	if t.cfg.ProbeBurst <= 0 {
		return true
	}
	if c.probes == nil {
		c.probes = rate.NewLimiter(rate.Limit(t.cfg.ProbeRate), t.cfg.ProbeBurst)
	}
	if c.probes.Tokens() >= float64(t.cfg.ProbeBurst) {
		c.strikes = 0
	}
	if c.probes.Allow() {
		return true
	}
	c.strikes++
	if c.strikes > t.cfg.ProbeStrikes {
		t.stats.probeClosed.Add(1)
		c.close(ErrProbing)
		return false
	}
	t.stats.probeDelayed.Add(1)
	timer := time.NewTimer(t.cfg.ProbeDelay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-c.done:
		return false
	case <-t.stop:
		c.close(ErrClosed)
		return false
	}
}

// recentlyStopped reports whether err is a route error for a local address
// whose worker (a connection alias, a forwarder) stopped moments ago.
func (t *Transport) recentlyStopped(err error) bool {
	re, ok := errors.AsType[*node.RouteError](err)
	return ok && re.Addr.Type == routing.Local && t.node.RecentlyStopped(re.Addr.Value)
}

// acceptBackoff waits after a failed accept (out of descriptors: EMFILE,
// ENFILE), doubling from 5 ms to 1 s, and logs at most once a second.
// It reports false if the transport closed meanwhile.
func (t *Transport) acceptBackoff(err error, delay *time.Duration) bool {
	*delay = backoff.NextAccept(*delay)
	t.stats.acceptErrors.Add(1)
	t.acceptLog.Do(func() { t.log.Warn("accept failed; backing off", "err", err, "delay", *delay) })
	timer := time.NewTimer(*delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.stop:
		return false
	case <-t.draining:
		return false
	}
}
