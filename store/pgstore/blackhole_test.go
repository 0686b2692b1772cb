package pgstore_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/pgtest"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
)

// freezer is a TCP proxy to a PostgreSQL server that can stop forwarding
// bytes without closing anything, as a network partition does: neither
// side hears from the other, and no connection is reset.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	thawed chan struct{} // closed while forwarding
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target, thawed: make(chan struct{})}
	close(f.thawed)
	f.wg.Go(f.accept)
	t.Cleanup(func() {
		ln.Close()
		f.thaw()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		f.wg.Go(func() { f.pipe(s, c) })
		f.wg.Go(func() { f.pipe(c, s) })
	}
}

// pipe copies src to dst, holding each chunk while frozen.
func (f *freezer) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			gate := f.thawed
			f.mu.Unlock()
			<-gate
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.thawed = make(chan struct{})
}

func (f *freezer) thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.thawed:
	default:
		close(f.thawed)
	}
}

// TestNetworkPartition: with the network to PostgreSQL silently dropping
// everything, a query with a context that has no deadline (an HTTP
// handler's, provision's retries) fails with store.ErrUnavailable after
// the client-side timeout instead of waiting for TCP to give up; when the
// network is back, the same pool serves again without a restart.
func TestNetworkPartition(t *testing.T) {
	defer pgstore.SetDefaultStatementTimeout(testStatementTimeout)()
	defer pgstore.SetClientTimeoutMargin(500 * time.Millisecond)()
	dsn := pgtest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	s := open(t, u.String())
	t.Cleanup(f.thaw) // before the store closes: Close waits for queries
	ctx := context.Background()
	a, err := s.UpsertAccount(ctx, store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}

	f.freeze()
	done := make(chan error, 1)
	go func() {
		_, err := s.Account(ctx, a.ID)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Account during a partition: %v, want store.ErrUnavailable", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Account during a partition still waiting after %v", waitLimit)
	}

	f.thaw()
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := s.Account(ctx, a.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Account after the partition healed: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}
