package node

import (
	"fmt"
	"testing"
	"time"
)

func TestGone(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		after time.Duration // since add
		want  bool
	}{
		{"at once", 0, true},
		{"within the TTL", goneTTL - time.Second, true},
		{"one rotation later", goneTTL + time.Second, true},
		{"two rotations later", 2*goneTTL + time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g gone
			g.add("a", t0)
			if got := g.has("a", t0.Add(tc.after)); got != tc.want {
				t.Fatalf("has after %v = %v, want %v", tc.after, got, tc.want)
			}
			if g.has("b", t0.Add(tc.after)) {
				t.Fatal("an address never added is known")
			}
		})
	}
}

// TestGoneBounded: a flood of stopped workers keeps at most two
// generations of goneMax addresses.
func TestGoneBounded(t *testing.T) {
	var g gone
	now := time.Now()
	for i := range 3*goneMax + 7 {
		g.add(fmt.Sprint(i), now)
	}
	if n := len(g.cur) + len(g.old); n > 2*goneMax {
		t.Fatalf("%d addresses kept, want at most %d", n, 2*goneMax)
	}
	if !g.has(fmt.Sprint(3*goneMax+6), now) {
		t.Fatal("the newest address was forgotten")
	}
}

func TestRecentlyStopped(t *testing.T) {
	n := New(Config{NoApp: true})
	defer n.Close()
	if _, err := n.StartWorkerConfig(t.Context(), HandlerFunc(nil), WorkerConfig{Addresses: []string{"w", "w2"}}); err != nil {
		t.Fatal(err)
	}
	if n.RecentlyStopped("w") {
		t.Fatal("a running worker reported stopped")
	}
	if err := n.StopWorker(t.Context(), "w"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"w", "w2"} {
		if !n.RecentlyStopped(a) {
			t.Fatalf("%s not reported stopped", a)
		}
	}
	if n.RecentlyStopped("never") {
		t.Fatal("an address that never existed reported stopped")
	}
}
