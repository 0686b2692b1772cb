package pgstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/pgtest"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
)

func TestClusterPlacementClaimsHandOver(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t))
	ctx := t.Context()
	acc, err := s.UpsertAccount(ctx, store.ProviderLocal, "a", "a")
	if err != nil {
		t.Fatal(err)
	}
	const lease = time.Hour
	for _, name := range []string{"a", "b", "c"} {
		if _, err := s.RenewLease(ctx, name, "127.0.0.1", lease, false); err != nil {
			t.Fatal(err)
		}
	}
	// Placement on the fewest nodes: 9 nodes, 3 each.
	count := map[string]int{}
	var ids []int64
	for i := range 9 {
		n, err := s.CreateNode(ctx, store.Node{AccountID: acc.ID, Name: fmt.Sprintf("n%d", i), Port: 5000 + i, Status: store.StatusStarting}, 0)
		if err != nil {
			t.Fatal(err)
		}
		where, err := s.PlaceNode(ctx, n.ID, "a")
		if err != nil {
			t.Fatal(err)
		}
		count[where]++
		ids = append(ids, n.ID)
		if again, err := s.PlaceNode(ctx, n.ID, "b"); err != nil || again != where {
			t.Fatalf("placing n%d again: %q, %v; want it to stay on %q", i, again, err, where)
		}
	}
	if count["a"] != 3 || count["b"] != 3 || count["c"] != 3 {
		t.Fatalf("placement %v, want 3 on each", count)
	}
	// Nothing to claim while every lease is live.
	if orphans, claimed, err := s.ClaimOrphans(ctx, "a", 0, 3); err != nil || orphans != 0 || len(claimed) != 0 {
		t.Fatalf("claim with live leases: %d orphans, claimed %v, %v", orphans, claimed, err)
	}
	// c's lease lapses: a and b claim its three nodes concurrently, many
	// times over; each node is claimed exactly once, its epoch raised.
	if err := s.ExpireLease(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	before := epochs(t, s)
	var mu sync.Mutex
	claimedBy := map[int64][]string{}
	var wg sync.WaitGroup
	for i := range 10 {
		self := []string{"a", "b"}[i%2]
		wg.Go(func() {
			_, claimed, err := s.ClaimOrphans(context.Background(), self, 0, 2)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, id := range claimed {
				claimedBy[id] = append(claimedBy[id], self)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(claimedBy) != 3 {
		t.Fatalf("claimed %v, want c's 3 nodes", claimedBy)
	}
	after := epochs(t, s)
	for id, by := range claimedBy {
		if len(by) != 1 {
			t.Errorf("node %d claimed by %v, want exactly one", id, by)
		}
		if after[id] != before[id]+1 {
			t.Errorf("node %d epoch %d -> %d, want +1", id, before[id], after[id])
		}
	}
	// Hand-over: from a to the least loaded live instance (b), epoch +1;
	// with no other live instance, the node stays.
	var onA int64
	ps, _ := s.Placements(ctx)
	for _, p := range ps {
		if p.Instance == "a" {
			onA = p.NodeID
		}
	}
	if to, err := s.HandOver(ctx, onA, "a"); err != nil || to != "b" {
		t.Fatalf("hand over: %q, %v; want b", to, err)
	}
	if to, err := s.HandOver(ctx, onA, "a"); err != nil || to != "" {
		t.Fatalf("hand over a node a no longer has: %q, %v; want nothing", to, err)
	}
	if err := s.ExpireLease(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if to, err := s.HandOver(ctx, ids[0], "a"); err != nil || to != "" {
		t.Fatalf("hand over with no other live instance: %q, %v; want none", to, err)
	}
	others, err := s.RenewLease(ctx, "a", "127.0.0.1", lease, false)
	if err != nil || others != 0 {
		t.Fatalf("renew: %d others, %v; want 0 (b and c lapsed)", others, err)
	}
	// A deleted node's placement goes with it.
	if err := s.DeleteNode(ctx, acc.ID, ids[0]); err != nil {
		t.Fatal(err)
	}
	ps, _ = s.Placements(ctx)
	if len(ps) != 8 {
		t.Fatalf("%d placements after deleting a node, want 8", len(ps))
	}
}

func epochs(t *testing.T, s interface {
	Placements(context.Context) ([]pgstore.Placement, error)
}) map[int64]int64 {
	t.Helper()
	ps, err := s.Placements(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, p := range ps {
		out[p.NodeID] = p.Epoch
	}
	return out
}
