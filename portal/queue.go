package portal

import "sync"

// writeQueue holds the bytes received from the peer until the writer
// goroutine has written them to the local socket. push blocks while more
// than limit bytes wait (the back pressure a 2021 Rust peer relies on);
// with flow control the peer never gets that far ahead.
type writeQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  [][]byte
	bytes   int
	limit   int
	closed  bool // no more pushes; the writer drains what is queued
	aborted bool // the writer stops at once
}

func newWriteQueue(limit int) *writeQueue {
	q := &writeQueue{limit: limit}
	q.cond.L = &q.mu
	return q
}

// push queues b, waiting while the queue is over its limit. It reports
// false once the queue is closed or aborted.
func (q *writeQueue) push(b []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.bytes >= q.limit && !q.closed && !q.aborted {
		q.cond.Wait()
	}
	if q.closed || q.aborted {
		return false
	}
	q.chunks = append(q.chunks, b)
	q.bytes += len(b)
	q.cond.Broadcast()
	return true
}

// pop returns everything queued, waiting for something; ok is false when
// the queue is closed and drained, or aborted.
func (q *writeQueue) pop() (batch [][]byte, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && !q.closed && !q.aborted {
		q.cond.Wait()
	}
	if q.aborted || len(q.chunks) == 0 {
		return nil, false
	}
	batch, q.chunks = q.chunks, nil
	return batch, true
}

// done tells the queue that a popped batch of n bytes has been written.
func (q *writeQueue) done(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.cond.Broadcast()
	q.mu.Unlock()
}

// close lets the writer drain what is queued, then stop.
func (q *writeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// abort stops the writer and every pusher at once.
func (q *writeQueue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
