package tcp

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// sendQueue is a connection's bounded queue of messages to write, and the
// right to write to its socket. Senders append under a mutex; whoever holds
// the right (writing) takes everything queued at once, so the cost per
// message is one short critical section, and a burst becomes one batch (one
// write system call) however many senders there are.
//
// The right is held by one goroutine at a time: a sender that finds the
// queue idle writes itself, from its own goroutine (no hand-off); a backlog
// the socket cannot take at once is left to a writer goroutine started for
// it, which exits once the queue is empty. An idle connection therefore has
// no writer goroutine and, once its first batch is written, no queue array.
type sendQueue struct {
	mu       sync.Mutex
	msgs     []queued
	spare    []queued // the last batch, for reuse while the connection is busy
	limit    int      // messages
	maxBytes int      // encoded bytes
	bytes    int      // encoded bytes queued now
	writing  bool     // someone holds the right to write (see above)
	closed   bool     // the connection has closed: nobody may take the right
	deferred *reader  // a reader that queued here and will flush before it blocks
	// direct counts the messages senders have written themselves since
	// input last arrived or a writer goroutine last found the queue
	// empty: from maxSenderDirect on, a sender that finds the queue idle
	// leaves the write to a writer goroutine, so that a burst of one
	// sender is batched (one write) instead of one write per message,
	// while a few messages in a row (a reply and a credit, a credit and
	// data) are each written at once.
	direct   atomic.Int32
	space    chan struct{} // signalled when the writer has made room
	released chan struct{} // signalled when the right to write is given up
}

// queued is a message with its encoded size (frame header included).
type queued struct {
	m    routing.TransportMessage
	size int
	at   int64 // unix nanoseconds when queued, for sampled latency; 0 = not sampled
	// lease, when not nil, holds the memory of the frame the message was
	// decoded from (payload and address values) until it is written.
	lease *lease
	// frame, when not nil, is the message already encoded as its frame
	// (length prefix included; a frame relayed by its bytes, relay.go),
	// and m is unused.
	frame []byte
	// tail, when not nil, is the end of m's payload, tailN bytes waiting
	// in a pipe (node.PipeTail): the frame is m's head and payload, then
	// those bytes, spliced into the socket. Whoever drops the message
	// calls tail.Done(false) (dropTails); encode hands it to the wbuf.
	tail  node.PipeTail
	tailN int
}

// dropTails gives back the pipes of messages that will not be written.
func dropTails(batch []queued) {
	for i := range batch {
		if t := batch[i].tail; t != nil {
			batch[i].tail = nil
			t.Done(false)
		}
	}
}

func newSendQueue(limit, maxBytes int) *sendQueue {
	return &sendQueue{limit: limit, maxBytes: maxBytes, space: make(chan struct{}, 1), released: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// fits reports whether m may be queued now; q.mu is held.
// A message larger than the byte bound is accepted into an empty queue, so
// that any frame can be sent.
func (q *sendQueue) fits(m *queued) bool {
	return len(q.msgs) < q.limit && (len(q.msgs) == 0 || q.bytes+m.size <= q.maxBytes)
}

// appendLocked queues m; q.mu is held and fits(m) is true.
func (q *sendQueue) appendLocked(m queued) {
	if q.msgs == nil {
		if q.spare != nil {
			q.msgs, q.spare = q.spare, nil
		} else {
			q.msgs = getQueueArray()
		}
	}
	q.msgs = append(q.msgs, m)
	q.bytes += m.size
}

// waitSpace waits for the writer to make room, until done is closed, ctx
// ends or expired fires. It reports why it gave up.
func (q *sendQueue) waitSpace(ctx context.Context, done <-chan struct{}, expired <-chan time.Time) error {
	select {
	case <-q.space:
		return nil
	case <-done:
		return ErrClosed
	case <-expired:
		return ErrQueueFull
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeLocked returns everything queued and empties the queue; q.mu is held
// by the holder of the right to write. The caller gives the slice back with
// release once it has written the messages.
func (q *sendQueue) takeLocked() []queued {
	batch := q.msgs
	q.msgs = nil
	q.bytes = 0
	if len(batch) > 0 {
		signal(q.space)
	}
	return batch
}

// release returns a written batch for reuse, dropping its references. Only
// a batch of a busy connection is kept: an idle one holds no array.
func (q *sendQueue) release(batch []queued) {
	clear(batch)
	q.mu.Lock()
	if q.spare == nil && cap(batch) <= 4*q.limit && (q.writing || len(q.msgs) > 0) {
		q.spare = batch[:0]
		batch = nil
	}
	q.mu.Unlock()
	if batch != nil {
		putQueueArray(batch)
	}
}

// queueArrays holds the arrays of idle queues: a connection holds one only
// while it has something to write, and they are shared by all.
var queueArrays sync.Pool

func getQueueArray() []queued {
	if p, ok := queueArrays.Get().(*[]queued); ok {
		return (*p)[:0]
	}
	return make([]queued, 0, 16)
}

func putQueueArray(a []queued) {
	if cap(a) > 0 && cap(a) <= 4*DefaultSendQueueSize {
		clear(a[:cap(a)])
		a = a[:0]
		queueArrays.Put(&a)
	}
}

// len returns the number of queued messages.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs)
}
