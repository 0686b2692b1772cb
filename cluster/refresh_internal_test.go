package cluster

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/store/pgstore"
)

// TestRefreshKeepsRecentPlacement: a snapshot of the placements read after
// a node was created but before Place committed lists the node without an
// instance; refreshing with it must not forget where Place put the node
// (the API answered such a creation without its "instance").
func TestRefreshKeepsRecentPlacement(t *testing.T) {
	m := &Member{
		doors: map[int]*door{}, place: map[int64]pgstore.Placement{}, byPort: map[int]int64{},
		addrs: map[string]string{}, peers: map[netip.Addr]bool{}, startedAt: map[int64]time.Time{},
		closed: true, // no listeners in this test
	}
	snap := time.Now()
	// Place recorded nodes 1 and 2 after the snapshot was taken.
	m.startedAt[1] = snap.Add(time.Millisecond)
	m.place[1] = pgstore.Placement{NodeID: 1, Port: 4001, Instance: "i2", Epoch: 1}
	m.startedAt[2] = snap.Add(time.Millisecond)
	m.place[2] = pgstore.Placement{NodeID: 2, Port: 4002, Instance: "i2", Epoch: 1}
	// Node 3 was placed long ago and is now unplaced in the database.
	m.startedAt[3] = snap.Add(-time.Hour)
	m.place[3] = pgstore.Placement{NodeID: 3, Port: 4003, Instance: "i1", Epoch: 1}
	ps := []pgstore.Placement{
		{NodeID: 1, Port: 4001},                           // read before Place's commit
		{NodeID: 2, Port: 4002, Instance: "i3", Epoch: 2}, // moved since: the database wins
		{NodeID: 3, Port: 4003},                           // unplaced: the database wins
	}
	m.refresh(ps, nil, snap)
	for id, want := range map[int64]string{1: "i2", 2: "i3", 3: ""} {
		if got := m.Instance(id); got != want {
			t.Errorf("Instance(%d) = %q, want %q", id, got, want)
		}
		if m.byPort[int(4000+id)] != id {
			t.Errorf("byPort[%d] = %d, want %d", 4000+id, m.byPort[int(4000+id)], id)
		}
	}
}
