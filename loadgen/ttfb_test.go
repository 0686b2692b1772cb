package loadgen

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentPath is a path that accepts connections and never answers (a
// portal whose outlet never replies): it holds them until the test ends.
func silentPath(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestFirstByteSilentPath: a path that never answers ends the time to
// first byte measurements with an error naming it once their context
// ends, instead of hanging them (a read on an established connection does
// not watch the context).
func TestFirstByteSilentPath(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go serveTarget(tl)
	silent := silentPath(t)
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"back to back", func(ctx context.Context) error {
			_, _, err := firstByte(ctx, silent, 3)
			return err
		}},
		{"quiet", func(ctx context.Context) error {
			_, _, err := firstByteQuiet(ctx, []struct{ name, addr string }{{"direct", tl.Addr().String()}, {"silent", silent}}, 3)
			if err != nil && !strings.Contains(err.Error(), "silent") {
				t.Errorf("the error does not name the path that failed: %v", err)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- tc.run(ctx) }()
			// A generous bound on how long the measurement may outlive its
			// context; without one, it waits for the silent path forever.
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("a path that never answered was measured")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still measuring a silent path 5 s after the context ended")
			}
		})
	}
}
