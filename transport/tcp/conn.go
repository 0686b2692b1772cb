package tcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// readBufferSize is each connection's read buffer: small, so that idle
// connections stay cheap; large frames are read straight into their body.
const readBufferSize = 4096

// maxBatch is how many bytes the writer gathers before one write.
const maxBatch = 64 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch+MaxFrameSize+FrameHeaderSize); return &b }}

// conn is one TCP connection: a reader goroutine that routes what arrives,
// a writer goroutine that drains the send queue.
type conn struct {
	t     *Transport
	nc    net.Conn
	addr  routing.Address // 1#name, or 0#alias: prepended to the return route of what arrives
	name  string          // peer ip:port, or the string given to Connect
	ip    string          // source IP for per-IP accounting ("" if not counted)
	queue *sendQueue
	done  chan struct{}
	once  sync.Once

	lastWrite atomic.Int64  // unix nanoseconds of the last write, for IdleTimeout
	sample    atomic.Uint32 // counts sends, to time one in latencySampleEvery

	hooksMu sync.Mutex
	hooks   map[int]func() // run once the connection has closed
	nextID  int

	accepted bool          // accepted (not dialled): subject to the allow-list
	peer     netip.Addr    // the peer's IP, for the allow-list
	budget   bool          // holds a unit of t.cfg.Budget
	probes   *rate.Limiter // misses allowed (reader only; nil until the first)
	strikes  int           // misses beyond the allowance (reader only)

	budgetSrc string // the source the budget unit is held for ("" if dialled)
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
	t.nconns.Add(1)
	t.wg.Add(2)
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
	go func() { defer t.wg.Done(); c.writeLoop() }()
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

func (c *conn) enqueue(ctx context.Context, m queued) error {
	if c.isClosed() {
		return &ConnError{Peer: c.name, Err: ErrClosed}
	}
	if c.queue.tryPush(m) {
		return nil
	}
	wait := c.t.cfg.QueueFullWait
	var err error
	if wait < 0 {
		err = ErrQueueFull
	} else {
		err = c.queue.push(ctx, m, c.done, wait)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrClosed):
		return &ConnError{Peer: c.name, Err: ErrClosed}
	case errors.Is(err, ErrQueueFull):
		c.t.stats.queueFull.Add(1)
		return &ConnError{Peer: c.name, Err: ErrQueueFull}
	default:
		c.t.stats.queueFull.Add(1)
		return &ConnError{Peer: c.name, Err: fmt.Errorf("%w: %w", ErrQueueFull, err)}
	}
}

func (c *conn) readLoop() {
	t := c.t
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	var limiter *rate.Limiter
	if t.cfg.MessageRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(t.cfg.MessageRate), max(t.cfg.MessageBurst, 1))
	}
	for {
		if limiter != nil && !limiter.Allow() {
			t.stats.throttled.Add(1)
			if err := limiter.Wait(t.ctx); err != nil {
				c.close(ErrClosed)
				return
			}
		}
		// Only arm a deadline when the next read may block: frames already
		// buffered need no system call.
		if br.Buffered() < FrameHeaderSize {
			var dl time.Time
			if t.cfg.IdleTimeout > 0 {
				dl = time.Now().Add(t.cfg.IdleTimeout)
			}
			c.nc.SetReadDeadline(dl)
			if _, err := br.Peek(1); err != nil {
				// Idle means idle both ways: a peer that only receives
				// (a forwarder's registrant) is alive while we write to it.
				if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, c.lastWrite.Load())) < t.cfg.IdleTimeout {
					continue
				}
				c.close(readErr(err, "idle timeout"))
				return
			}
		}
		if need := FrameHeaderSize + peekLen(br); br.Buffered() < need {
			c.nc.SetReadDeadline(time.Now().Add(t.cfg.FrameTimeout))
		}
		body, err := ReadFrame(br, t.cfg.MaxFrameSize)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.stats.timeouts.Add(1)
			case errors.Is(err, ErrEmptyFrame):
				t.stats.empty.Add(1)
			case errors.Is(err, ErrFrameTooLarge):
				t.stats.oversized.Add(1)
			}
			c.close(readErr(err, "partial frame timed out"))
			return
		}
		t.stats.framesIn.Add(1)
		t.stats.bytesIn.Add(uint64(len(body) + FrameHeaderSize))
		if isHeartbeat(body) {
			t.stats.heartbeats.Add(1) // dropped silently: not a probe, not unroutable
			continue
		}
		// The connection's own address goes at the head of the return
		// route, so that replies find their way back (protocol.md §6.3).
		m, _, err := routing.DecodeMessageFrom(body, c.addr)
		if err != nil {
			t.stats.malformed.Add(1)
			c.close(fmt.Errorf("malformed frame: %w", err))
			return
		}
		if err := t.node.Route(t.ctx, m); err != nil {
			if t.ctx.Err() != nil {
				c.close(ErrClosed)
				return
			}
			if errors.Is(err, ErrNoConnection) || errors.Is(err, node.ErrUnknownAddress) {
				// A nonexistent address: maybe a probe for an alias.
				if !c.miss() {
					return
				}
			}
			if errors.Is(err, ErrQueueFull) || errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrNoConnection) {
				continue // counted where it happened
			}
			t.stats.unroutable.Add(1)
			t.logSometimes("dropped message", "peer", c.name, "onward", m.Onward.String(), "err", err)
		}
	}
}

// peekLen returns the length in a buffered frame header, or 0.
func peekLen(br *bufio.Reader) int {
	if br.Buffered() < FrameHeaderSize {
		return 0
	}
	h, _ := br.Peek(FrameHeaderSize)
	return int(h[0])<<8 | int(h[1])
}

func readErr(err error, timeout string) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New(timeout)
	}
	return err
}

func (c *conn) writeLoop() {
	t := c.t
	for {
		select {
		case <-c.queue.ready:
			if err := c.writeQueued(); err != nil {
				c.close(fmt.Errorf("write: %w", err))
				return
			}
		case <-c.done:
			return
		case <-t.draining:
			// Graceful shutdown: write what is queued, then close.
			if err := c.writeQueued(); err != nil {
				c.close(fmt.Errorf("write: %w", err))
				return
			}
			c.close(nil)
			return
		}
	}
}

// writeQueued writes everything queued, in as few writes as the batch size
// allows: batching is what makes small messages cheap.
func (c *conn) writeQueued() error {
	t := c.t
	batch := c.queue.take()
	defer c.queue.release(batch)
	if len(batch) == 0 {
		return nil
	}
	bp := batchPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0]; batchPool.Put(bp) }()
	frames := 0
	written, next := 0, 0 // batch[written:next] are in buf
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		c.nc.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
		// Count before writing: once Write has handed the bytes to the
		// kernel the peer can see them, and a counter read then (by a
		// test, or the dashboard after a client saw its reply) must not
		// lag behind. A failed write takes its count back.
		t.stats.framesOut.Add(uint64(frames))
		t.stats.bytesOut.Add(uint64(len(buf)))
		if _, err := c.nc.Write(buf); err != nil {
			t.stats.framesOut.Add(^uint64(frames - 1))
			t.stats.bytesOut.Add(^uint64(len(buf) - 1))
			return err
		}
		now := time.Now().UnixNano()
		c.lastWrite.Store(now)
		for _, q := range batch[written:next] {
			if q.at != 0 {
				t.latency.observe(time.Duration(now - q.at))
			}
		}
		written = next
		buf, frames = buf[:0], 0
		return nil
	}
	for i := range batch {
		next = i + 1
		var err error
		if buf, err = AppendFrame(buf, &batch[i].m, t.cfg.MaxFrameSize); err != nil {
			// Sizes are checked before queueing; only an invalid address
			// type can get here. Drop the message, keep the connection.
			t.stats.tooLarge.Add(1)
			t.logSometimes("dropped unencodable message", "peer", c.name, "err", err)
			continue
		}
		frames++
		if len(buf) >= maxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
