package securechannel

import (
	"math/rand/v2"
	"testing"
)

// replayModel is the obvious reference: a counter is accepted if it was
// never accepted before and is at most ReplayWindow behind the newest.
type replayModel struct {
	seen   map[uint16]bool
	newest int
}

func (m *replayModel) accept(c uint16) bool {
	if m.seen[c] || (m.newest >= 0 && m.newest-int(c) > ReplayWindow) {
		return false
	}
	m.seen[c] = true
	m.newest = max(m.newest, int(c))
	return true
}

func TestReplayWindow(t *testing.T) {
	type step struct {
		c    uint16
		want bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}}},
		{"duplicate", []step{{0, true}, {0, false}, {1, true}, {1, false}, {0, false}}},
		{"reordered", []step{{5, true}, {3, true}, {4, true}, {3, false}, {6, true}}},
		{"first not zero", []step{{1000, true}, {0, false}, {40, true}, {1000, false}}},
		{"edge of window", []step{{ReplayWindow, true}, {0, true}, {0, false}, {ReplayWindow + 1, true}, {1, true}}},
		{"just outside", []step{{ReplayWindow + 1, true}, {0, false}}},
		{"big jump clears", []step{{0, true}, {5000, true}, {5000 - ReplayWindow, true}, {5000 - ReplayWindow, false}, {4999, true}}},
		{"jump by ring size", []step{{63, true}, {63 + 1024, true}, {63 + 1024 - 64, true}, {63, false}}},
		{"last counters", []step{{65534, true}, {65535, true}, {65535, false}, {65534, false}, {65533, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w replayWindow
			for i, s := range tc.steps {
				if got := w.accept(s.c); got != s.want {
					t.Fatalf("step %d: accept(%d) = %v, want %v", i, s.c, got, s.want)
				}
			}
		})
	}
}

// TestReplayWindowModel compares the window with the model on random walks
// that mostly advance, sometimes jump and often look back.
func TestReplayWindowModel(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var w replayWindow
		m := &replayModel{seen: map[uint16]bool{}, newest: -1}
		cur := 0
		for i := range 5000 {
			var c int
			switch r := rng.IntN(10); {
			case r < 5:
				cur += 1 + rng.IntN(3)
				c = cur
			case r < 6:
				cur += rng.IntN(3000)
				c = cur
			default:
				c = cur - rng.IntN(1200)
			}
			if c < 0 || c > 65535 {
				continue
			}
			if got, want := w.accept(uint16(c)), m.accept(uint16(c)); got != want {
				t.Fatalf("seed %d step %d: accept(%d) = %v, model %v (newest %d)", seed, i, c, got, want, m.newest)
			}
		}
	}
}
