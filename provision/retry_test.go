package provision_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailedNodeRetried reproduces finding 9: a restored node whose port
// is taken stayed failed forever. Now it is shown failed with its reason
// and next retry time, retried with backoff, and starts once the port is
// free.
func TestFailedNodeRetried(t *testing.T) {
	e := newEnv(t, provision.Config{RetryMin: 20 * time.Millisecond, RetryMax: 80 * time.Millisecond})
	acct := e.account(t, "alice")
	n, err := e.p.Create(t.Context(), acct, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	squat, err := net.Listen("tcp", n.Address())
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	got, err := e.p.Node(t.Context(), acct, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusFailed || got.Reason == "" || got.NextRetry.IsZero() {
		t.Fatalf("node whose port is taken: status %s, reason %q, next retry %v; want failed with a reason and a retry time", got.Status, got.Reason, got.NextRetry)
	}
	// It is retried (the retry time moves on) while the port stays taken.
	first := got.NextRetry
	waitFor(t, "a second retry", func() bool {
		got, _ = e.p.Node(t.Context(), acct, n.ID)
		return got.Status == store.StatusFailed && got.NextRetry.After(first)
	})
	squat.Close()
	waitFor(t, "the node to start once its port is free", func() bool {
		got, _ = e.p.Node(t.Context(), acct, n.ID)
		return got.Status == store.StatusRunning
	})
	if !got.NextRetry.IsZero() || got.Reason != "" {
		t.Fatalf("running node: next retry %v, reason %q; want none", got.NextRetry, got.Reason)
	}
	echo(t, got.Address())
}

// TestFailedNodeDeleted checks that deleting a failed node stops its
// retries: the port, once free, is not taken by the deleted node.
func TestFailedNodeDeleted(t *testing.T) {
	e := newEnv(t, provision.Config{RetryMin: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond})
	acct := e.account(t, "alice")
	n, err := e.p.Create(t.Context(), acct, "demo")
	if err != nil {
		t.Fatal(err)
	}
	e.p.Shutdown(t.Context())
	squat, err := net.Listen("tcp", n.Address())
	if err != nil {
		t.Fatal(err)
	}
	e.start(t)
	if err := e.p.Delete(t.Context(), acct, n.ID); err != nil {
		t.Fatal(err)
	}
	squat.Close()
	// Several retry periods later the port is still free.
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		if len(e.p.Running()) != 0 {
			t.Fatal("a deleted failed node was started by a retry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", n.Address())
	if err != nil {
		t.Fatalf("port of the deleted node: %v", err)
	}
	ln.Close()
}

// TestCreateRate reproduces the missing creation quota: an account may
// create at most MaxCreatesPerHour nodes an hour, deleted ones included.
func TestCreateRate(t *testing.T) {
	e := newEnv(t, provision.Config{MaxNodesPerAccount: 1, MaxCreatesPerHour: 3})
	acct, other := e.account(t, "alice"), e.account(t, "bob")
	ctx := t.Context()
	for i := range 3 {
		n, err := e.p.Create(ctx, acct, "churn")
		if err != nil {
			t.Fatalf("creation %d: %v", i+1, err)
		}
		if err := e.p.Delete(ctx, acct, n.ID); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.p.Create(ctx, acct, "churn")
	re, ok := errors.AsType[*provision.RateError](err)
	if !ok || !errors.Is(err, provision.ErrRateLimited) || re.Limit != 3 || re.RetryAfter <= 0 || re.RetryAfter > time.Hour {
		t.Fatalf("fourth creation in an hour: got %v, want *RateError{3, within an hour}", err)
	}
	if _, err := e.p.Create(ctx, other, "bobs"); err != nil {
		t.Fatalf("another account is not limited by alice's creations: %v", err)
	}
}
