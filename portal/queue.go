package portal

import "sync"

// writeQueue holds the bytes received from the peer until they are written
// to the local socket, and the right to write to that socket. Whoever
// delivers a message writes it itself when nothing is queued and nobody
// writes (claim, then release with what the socket did not take); the
// writer goroutine writes what is queued (pop, then done). push blocks
// while more than limit bytes wait (the back pressure a 2021 Rust peer
// relies on); with flow control the peer never gets that far ahead.
type writeQueue struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  [][]byte
	bytes   int // queued, or popped and not yet written
	limit   int
	busy    bool // someone writes to the socket: the writer (a popped batch) or a deliverer (claim)
	poked   bool // the writer has something else to do (see poke)
	closed  bool // no more pushes; the writer drains what is queued
	aborted bool // the writer stops at once
}

func newWriteQueue(limit int) *writeQueue {
	q := &writeQueue{limit: limit}
	q.cond.L = &q.mu
	return q
}

// full reports whether a push would wait.
func (q *writeQueue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes >= q.limit && !q.closed && !q.aborted
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

// claim takes the right to write to the socket when nothing is queued and
// nobody writes; the caller then writes without waiting and gives the
// right back with release.
func (q *writeQueue) claim() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.busy || len(q.chunks) > 0 || q.closed || q.aborted {
		return false
	}
	q.busy = true
	return true
}

// release gives back the right taken by claim and queues rest, what the
// socket did not take, for the writer. It reports false when the queue
// was aborted meanwhile (rest is then dropped).
func (q *writeQueue) release(rest []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.busy = false
	q.cond.Broadcast()
	if q.aborted {
		return false
	}
	if len(rest) > 0 {
		// Queued even when closed meanwhile: these bytes were accepted
		// before the close, and the writer drains them.
		q.chunks = append(q.chunks, rest)
		q.bytes += len(rest)
	}
	return true
}

// pop returns everything queued and takes the right to write, waiting for
// something and for the right, or returns an empty batch (without the
// right) when poked; ok is false when the queue is closed and drained, or
// aborted.
func (q *writeQueue) pop() (batch [][]byte, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.aborted:
			return nil, false
		case !q.busy && len(q.chunks) > 0:
			batch, q.chunks = q.chunks, nil
			q.busy, q.poked = true, false
			return batch, true
		case q.poked:
			q.poked = false
			return nil, true
		case q.closed && !q.busy:
			return nil, false
		}
		q.cond.Wait()
	}
}

// done tells the queue that a popped batch of n bytes has been written,
// and gives back the right to write.
func (q *writeQueue) done(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.busy = false
	q.cond.Broadcast()
	q.mu.Unlock()
}

// poke wakes the writer's pop, without a batch if nothing is queued.
func (q *writeQueue) poke() {
	q.mu.Lock()
	q.poked = true
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
