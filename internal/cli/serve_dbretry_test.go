package cli_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/cli"
)

// TestServeWaitsForPostgres: serve --db postgres://… with the server
// unreachable at start keeps retrying (logging the URL without its
// password), does not serve /healthz meanwhile, and exits 0 when cancelled
// (SIGINT/SIGTERM), instead of exiting with an error at once.
func TestServeWaitsForPostgres(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &serveBuffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- cli.Main(ctx, []string{"serve", "--http", httpAddr, "--data", t.TempDir(), "--node-ports", serveNodePorts(), "--log-format", "text",
			"--db", "postgres://hub:hidden-pw-42@127.0.0.1:1/hub?sslmode=disable"}, &serveBuffer{}, stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "attempt=2") {
		select {
		case code := <-exited:
			t.Fatalf("serve exited %d instead of retrying\nstderr:\n%s", code, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second attempt within 20 s\nstderr:\n%s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		c.Close()
		t.Fatalf("--http %s accepts connections before the database answers", httpAddr)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d on cancel, want 0\nstderr:\n%s", code, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not stop within 10 s of cancel\nstderr:\n%s", stderr)
	}
	out := stderr.String()
	if !strings.Contains(out, "database unreachable; retrying") || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("retries not logged with the URL:\n%s", out)
	}
	if strings.Contains(out, "hidden-pw-42") {
		t.Fatalf("the password appears in the output:\n%s", out)
	}
}
