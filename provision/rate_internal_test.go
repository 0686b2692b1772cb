package provision

import (
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/store"
)

// nopStore satisfies Config.Store for tests that never reach the store.
type nopStore struct{ store.Store }

// TestCreatesForgotten: the per-account creation times were pruned only
// when the same account created again, so every account that ever made a
// node kept an entry for the life of the process (memory growing with the
// number of accounts). Now entries older than an hour are swept as the
// table grows, and recent ones are kept.
func TestCreatesForgotten(t *testing.T) {
	p, err := New(Config{Store: nopStore{}, Ports: PortRange{4001, 4001}})
	if err != nil {
		t.Fatal(err)
	}
	// 10240 accounts create one node each, evenly over ten hours: about
	// 1024 of them in the last hour.
	const accounts = 10 * minCreatesSweep
	start := time.Now().Add(-10 * time.Hour)
	step := 10 * time.Hour / accounts
	for id := range int64(accounts) {
		p.noteCreate(id, start.Add(time.Duration(id)*step))
	}
	now := time.Now()
	for id := range int64(10) {
		p.noteCreate(1_000_000+id, now)
	}
	p.mu.Lock()
	n := len(p.creates)
	p.mu.Unlock()
	if n > 3*minCreatesSweep {
		t.Fatalf("%d accounts remembered after %d creations over ten hours, want at most %d", n, accounts, 3*minCreatesSweep)
	}
	for id := range int64(10) {
		p.noteCreate(1_000_000+id, now) // 2 recent creations each
	}
	p.cfg.MaxCreatesPerHour = 2
	if err := p.checkRate(1_000_003, now); err == nil {
		t.Fatal("a recent account's creations were forgotten")
	}
}
