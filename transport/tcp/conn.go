package tcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// conn is one TCP connection: a reader goroutine that routes what arrives
// (read.go), and a send queue written by whoever finds it idle, or by a
// writer goroutine while a backlog lasts (write.go).
type conn struct {
	t     *Transport
	nc    net.Conn
	rc    syscall.RawConn // nil: no direct (non-blocking) I/O on this connection
	addr  routing.Address // 1#name, or 0#alias: prepended to the return route of what arrives
	name  string          // peer ip:port, or the string given to Connect
	ip    string          // source IP for per-IP accounting ("" if not counted)
	queue *sendQueue
	done  chan struct{}
	once  sync.Once

	lastWrite atomic.Int64  // unix nanoseconds of the last write, when IdleTimeout is set
	sample    atomic.Uint32 // counts sends, to time one in latencySampleEvery

	// Per-connection counters, summed by Transport.Stats: no cache line is
	// shared by every connection's reader.
	framesIn, bytesIn, framesOut, bytesOut atomic.Uint64

	hooksMu sync.Mutex
	hooks   map[int]func() // run once the connection has closed
	nextID  int

	accepted bool          // accepted (not dialled): subject to the allow-list
	peer     netip.Addr    // the peer's IP, for the allow-list
	budget   bool          // holds a unit of t.cfg.Budget
	probes   *rate.Limiter // misses allowed (reader only; nil until the first)
	strikes  int           // misses beyond the allowance (reader only)

	budgetSrc string // the source the budget unit is held for ("" if dialled)

	so *spliceOut // pipe tails' splices (the holder of the right to write only); nil until the first
}

// aliasBytes is the randomness of connection aliases: 64 bits, so that an
// alias cannot be found by probing (see Config.ProbeBurst).
const aliasBytes = 8

// refuse closes nc, refused at accept, and counts it under reason.
func (t *Transport) refuse(nc net.Conn, reason *atomic.Uint64) {
	t.stats.refused.Add(1)
	reason.Add(1)
	nc.Close()
}

func (t *Transport) add(nc net.Conn, name string, accepted bool) (*conn, error) {
	if t.isClosed() {
		nc.Close()
		return nil, ErrClosed
	}
	var ip netip.Addr
	if accepted {
		// Refusals cost no more than the accept: no goroutine, no read.
		if ip = peerIP(nc); !t.admits(ip) {
			t.refuse(nc, &t.admit.allow)
			return nil, &ConnError{Peer: name, Err: ErrNotAllowed}
		}
	}
	if t.cfg.MaxConns > 0 && t.nconns.Load() >= int64(t.cfg.MaxConns) {
		t.refuse(nc, &t.admit.cap)
		return nil, &ConnError{Peer: name, Err: ErrTooManyConns}
	}
	c := &conn{
		t:     t,
		nc:    nc,
		rc:    rawConnOf(nc),
		name:  name,
		addr:  routing.TCPAddress(name),
		queue: newSendQueue(t.cfg.SendQueueSize, t.cfg.SendQueueBytes),
		done:  make(chan struct{}),

		accepted: accepted,
		peer:     ip,
	}
	if accepted && t.cfg.MaxConnsPerIP > 0 {
		host := sourceKey(ip, name)
		t.perIPMu.Lock()
		if t.perIP[host] >= t.cfg.MaxConnsPerIP {
			t.perIPMu.Unlock()
			t.refuse(nc, &t.admit.perIP)
			return nil, &ConnError{Peer: name, Err: fmt.Errorf("%w from %s", ErrTooManyConns, host)}
		}
		t.perIP[host]++
		t.perIPMu.Unlock()
		c.ip = host
	}
	if t.cfg.Budget != nil {
		if accepted {
			c.budgetSrc = sourceKey(ip, name)
		}
		if !t.cfg.Budget.acquire(c.budgetSrc) {
			c.releaseIP()
			t.refuse(nc, &t.admit.budget)
			return nil, &ConnError{Peer: name, Err: ErrBudget}
		}
		c.budget = true
	}
	if accepted && t.cfg.Aliases {
		if err := c.startAlias(); err != nil {
			c.releaseIP()
			nc.Close()
			return nil, &ConnError{Peer: name, Err: err}
		}
	}
	// Publish the connection and start its goroutines under t.mu, so that
	// Close, which marks the transport closed under the same lock before it
	// closes every connection, either sees this one or refuses it here.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		c.releaseIP()
		if c.addr.Type == routing.Local {
			t.node.StopWorker(context.Background(), c.addr.Value)
		}
		nc.Close()
		return nil, ErrClosed
	}
	old, loaded := t.conns.Swap(c.addr, c)
	t.live.Store(c, struct{}{})
	t.nconns.Add(1)
	t.wg.Add(1)
	t.mu.Unlock()
	if loaded {
		// A new connection under the same name replaces the old one.
		old.(*conn).close(errors.New("replaced by a new connection"))
	}
	if accepted && !t.admits(ip) {
		// SetAllow ran after the check above and before c was published,
		// so its sweep may have missed c: close it here.
		t.stats.allowClosed.Add(1)
		c.close(ErrNotAllowed)
	}
	if accepted {
		t.stats.accepted.Add(1)
	} else {
		t.stats.dialled.Add(1)
	}
	t.log.Debug("connection open", "peer", name, "accepted", accepted)
	go func() { defer t.wg.Done(); c.readLoop() }()
	return c, nil
}

func (c *conn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// close closes the connection once; err (nil for a normal end) is logged.
func (c *conn) close(err error) {
	c.once.Do(func() {
		c.t.conns.CompareAndDelete(c.addr, c)
		q := c.queue
		q.mu.Lock()
		q.closed = true
		dropped := q.msgs
		q.msgs, q.spare, q.bytes = nil, nil, 0
		q.mu.Unlock()
		dropTails(dropped) // outside the lock: Done is the sender's code
		clear(dropped)
		close(c.done)
		c.nc.Close()
		if c.addr.Type == routing.Local {
			c.t.node.StopWorker(context.Background(), c.addr.Value)
		}
		c.t.nconns.Add(-1)
		c.releaseIP()
		c.hooksMu.Lock()
		hooks := c.hooks
		c.hooks = nil
		c.hooksMu.Unlock()
		for _, f := range hooks {
			f()
		}
		if err != nil && !errors.Is(err, ErrClosed) {
			c.t.logSometimes("connection closed", "peer", c.name, "err", err)
		} else {
			c.t.log.Debug("connection closed", "peer", c.name)
		}
	})
}

// releaseIP gives back what add took for c: its per-IP count and its
// budget unit.
func (c *conn) releaseIP() {
	if c.budget {
		c.budget = false
		c.t.cfg.Budget.release(c.budgetSrc)
	}
	if c.ip == "" {
		return
	}
	c.t.perIPMu.Lock()
	if c.t.perIP[c.ip]--; c.t.perIP[c.ip] <= 0 {
		delete(c.t.perIP, c.ip)
	}
	c.t.perIPMu.Unlock()
}

// startAlias registers the connection under a random local address, as the
// Elixir Hub's connection handler did (protocol.md §6.4), but of 16 hex
// digits instead of 8: the 2021 programs treat it as opaque.
func (c *conn) startAlias() error {
	var err error
	for range 8 {
		var addrs []routing.Address
		addrs, err = c.t.node.StartWorkerConfig(context.Background(), aliasWorker{c}, node.WorkerConfig{
			Addresses: []string{node.RandomAddress(aliasBytes)},
			Inline:    true,
		})
		if err == nil {
			c.addr = addrs[0]
			return nil
		}
		if !errors.Is(err, node.ErrAddressInUse) {
			break
		}
	}
	return err
}

// aliasWorker sends what is routed to a connection's alias over that
// connection, after dropping every leading copy of the alias from the onward
// route (the Elixir handler's drop_while).
type aliasWorker struct{ c *conn }

func (w aliasWorker) HandleMessage(ctx context.Context, _ node.Sender, m *node.Message) error {
	tm := m.Transport()
	for len(tm.Onward) > 0 && tm.Onward[0] == w.c.addr {
		tm.Onward = tm.Onward[1:]
	}
	if len(tm.Onward) == 0 {
		// Nothing left for the peer to route by: a 2021 Rust peer's
		// reader dies on such a frame (protocol.md §13.8). Drop it.
		w.c.t.stats.unroutable.Add(1)
		return fmt.Errorf("tcp: dropped a message for %s with nothing after its alias", w.c.name)
	}
	return w.c.send(ctx, tm)
}

// send checks m's size and queues it.
func (c *conn) send(ctx context.Context, m routing.TransportMessage) error {
	n := m.EncodedLen()
	if n > c.t.cfg.MaxFrameSize {
		c.t.stats.tooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, c.t.cfg.MaxFrameSize)
	}
	q := queued{m: m, size: n + FrameHeaderSize}
	if c.sample.Add(1)%latencySampleEvery == 0 {
		q.at = time.Now().UnixNano()
	}
	return c.enqueue(ctx, q)
}

// sendTail checks the size of m, whose payload ends with the bytes of
// tail, and queues it; tail.Done is called exactly once, whatever it
// returns. A connection that cannot splice (not a TCP socket) takes the
// bytes out of the pipe and sends them the usual way.
func (c *conn) sendTail(ctx context.Context, m routing.TransportMessage, tail node.PipeTail) error {
	fd, k := tail.Pipe()
	if c.rc == nil || !canSplice {
		b := make([]byte, len(m.Payload)+k)
		copy(b, m.Payload)
		if err := readFull(fd, b[len(m.Payload):]); err != nil {
			tail.Done(false)
			return err
		}
		tail.Done(true)
		m.Payload = b
		return c.send(ctx, m)
	}
	head := m.Payload
	m.Payload = nil
	n := m.EncodedLen() - 1 + bare.UintLen(uint64(len(head)+k)) + len(head) + k
	m.Payload = head
	if n > c.t.cfg.MaxFrameSize {
		tail.Done(false)
		c.t.stats.tooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, c.t.cfg.MaxFrameSize)
	}
	q := queued{m: m, size: n + FrameHeaderSize, tail: tail, tailN: k}
	if c.sample.Add(1)%latencySampleEvery == 0 {
		q.at = time.Now().UnixNano()
	}
	err := c.enqueue(ctx, q)
	if err != nil {
		tail.Done(false)
	}
	return err
}
