package tcp

import (
	"context"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/routing"
)

// sendQueue is a connection's bounded queue of messages to write. Senders
// append under a mutex; the writer takes everything queued at once, so the
// cost per message is one short critical section, and a burst becomes one
// batch (one write system call) however many senders there are.
type sendQueue struct {
	mu       sync.Mutex
	msgs     []queued
	spare    []queued      // the writer's last batch, for reuse
	limit    int           // messages
	maxBytes int           // encoded bytes
	bytes    int           // encoded bytes queued now
	ready    chan struct{} // signalled when msgs becomes non-empty
	space    chan struct{} // signalled when the writer has made room
}

// queued is a message with its encoded size (frame header included).
type queued struct {
	m    routing.TransportMessage
	size int
	at   int64 // unix nanoseconds when queued, for sampled latency; 0 = not sampled
}

func newSendQueue(limit, maxBytes int) *sendQueue {
	return &sendQueue{limit: limit, maxBytes: maxBytes, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tryPush queues m unless the queue is full.
// A message larger than the byte bound is accepted into an empty queue, so
// that any frame can be sent.
func (q *sendQueue) tryPush(m queued) bool {
	q.mu.Lock()
	if len(q.msgs) >= q.limit || (len(q.msgs) > 0 && q.bytes+m.size > q.maxBytes) {
		q.mu.Unlock()
		return false
	}
	if q.msgs == nil {
		q.msgs = make([]queued, 0, min(q.limit, 64))
	}
	q.msgs = append(q.msgs, m)
	q.bytes += m.size
	first := len(q.msgs) == 1
	q.mu.Unlock()
	if first {
		signal(q.ready)
	}
	return true
}

// push queues m, waiting for room until done is closed, ctx ends or wait
// passes (wait 0 = no time limit). It reports why it gave up.
func (q *sendQueue) push(ctx context.Context, m queued, done <-chan struct{}, wait time.Duration) error {
	if q.tryPush(m) {
		return nil
	}
	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-q.space:
			if q.tryPush(m) {
				signal(q.space) // room may remain for another waiter
				return nil
			}
		case <-done:
			return ErrClosed
		case <-expired:
			return ErrQueueFull
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// take returns everything queued and empties the queue. The caller gives the
// slice back with release once it has written the messages.
func (q *sendQueue) take() []queued {
	q.mu.Lock()
	batch := q.msgs
	q.msgs = q.spare
	q.spare = nil
	q.bytes = 0
	q.mu.Unlock()
	if len(batch) > 0 {
		signal(q.space)
	}
	return batch
}

// release returns a written batch for reuse, dropping its references.
func (q *sendQueue) release(batch []queued) {
	clear(batch)
	q.mu.Lock()
	if q.spare == nil && cap(batch) <= 4*q.limit {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}

// len returns the number of queued messages.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}
