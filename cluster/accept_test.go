package cluster

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// failingListener fails every Accept with EMFILE until closed.
type failingListener struct {
	mu     sync.Mutex
	calls  int
	closed chan struct{}
	once   sync.Once
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
}

func (l *failingListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *failingListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)} }

func (l *failingListener) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// countHandler counts log records.
type countHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(context.Context, slog.Record) error {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestAcceptOutOfDescriptors: when a node port's accept keeps failing
// (EMFILE), the front door backs off from 5 ms, doubling, and logs at most
// once a second; closing the door ends the loop during a backoff.
func TestAcceptOutOfDescriptors(t *testing.T) {
	logs := &countHandler{}
	m := &Member{log: slog.New(logs), doors: map[int]*door{}, acceptLog: rate.Sometimes{Interval: time.Second}}
	fl := &failingListener{closed: make(chan struct{})}
	d := &door{port: 1, ln: fl, stop: make(chan struct{})}
	m.doors[1] = d
	m.conns.Add(1)
	start := time.Now()
	go m.accept(d)
	deadline := time.Now().Add(5 * time.Second)
	for fl.n() < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d accepts in 5 s", fl.n())
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	m.mu.Lock()
	delete(m.doors, 1)
	d.close()
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("accept loop still running after the door closed")
	}
	// 5 + 10 + 20 + 40 + 80 ms of backoff at least between the first six.
	if elapsed < 150*time.Millisecond {
		t.Fatalf("six failed accepts in %v: no growing backoff", elapsed)
	}
	if calls := fl.n(); calls > 12 {
		t.Fatalf("%d accept calls in %v: spinning", calls, elapsed)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.n != 1 {
		t.Fatalf("%d log records, want 1", logs.n)
	}
}
