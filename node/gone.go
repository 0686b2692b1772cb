package node

import (
	"sync"
	"time"
)

// goneTTL is how long the address of a stopped worker is remembered (between
// one and two of these), and goneMax how many are remembered per generation.
const (
	goneTTL = time.Minute
	goneMax = 1 << 16
)

// gone remembers the addresses of recently stopped workers, so that a
// message for one (a peer that has not yet seen its connection or forwarder
// go) can be told from a message for an address that never existed (a
// probe). Two generations of a bounded set, rotated every goneTTL: memory is
// bounded by 2*goneMax addresses. The zero value is ready.
type gone struct {
	mu       sync.Mutex
	cur, old map[string]struct{}
	rotated  time.Time
}

func (g *gone) rotate(now time.Time) {
	switch age := now.Sub(g.rotated); {
	case age >= 2*goneTTL:
		g.cur, g.old, g.rotated = nil, nil, now
	case age >= goneTTL:
		g.cur, g.old, g.rotated = nil, g.cur, now
	}
}

func (g *gone) add(addr string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotate(now)
	if g.cur == nil {
		g.cur = make(map[string]struct{})
	}
	g.cur[addr] = struct{}{}
	if len(g.cur) >= goneMax {
		g.cur, g.old, g.rotated = nil, g.cur, now
	}
}

func (g *gone) has(addr string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rotate(now)
	_, inCur := g.cur[addr]
	_, inOld := g.old[addr]
	return inCur || inOld
}

// RecentlyStopped reports whether a worker was registered at the local
// address addr and stopped within about the last minute (at most two). A
// transport uses it to tell a peer still sending to a connection or
// forwarder that has just gone from one probing for addresses that never
// existed. Safe for concurrent use.
func (n *Node) RecentlyStopped(addr string) bool { return n.gone.has(addr, time.Now()) }
