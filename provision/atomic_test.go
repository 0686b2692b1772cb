package provision_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

// listening returns the ports of r that accept a TCP connection on
// 127.0.0.1.
func listening(t *testing.T, r provision.PortRange) []int {
	t.Helper()
	var out []int
	for port := r.First; port <= r.Last; port++ {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			out = append(out, port)
		}
	}
	return out
}

// checkConsistent fails unless the running nodes are exactly the stored
// nodes that are not failed, and the listening ports of the range exactly
// their ports.
func checkConsistent(t *testing.T, e *env, when string) {
	t.Helper()
	all, err := e.st.AllNodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var stored []int64
	var ports []int
	for _, n := range all {
		if n.Status == store.StatusFailed {
			continue
		}
		stored = append(stored, n.ID)
		ports = append(ports, n.Port)
	}
	slices.Sort(ports)
	if running := e.p.Running(); !slices.Equal(running, stored) {
		t.Fatalf("%s: running nodes %v, stored nodes %v", when, running, stored)
	}
	if got := listening(t, e.cfg.Ports); !slices.Equal(got, ports) {
		t.Fatalf("%s: ports listening %v, stored nodes' ports %v (an orphan node holds a port)", when, got, ports)
	}
}

// TestCreateRacingDeleteOfNextID reproduces the orphan race of issue 10:
// POST /api/v1/nodes racing DELETE of the ID that node is about to get.
// On the old code Delete did not take the lock Create held between
// inserting the row and registering the running node, so a Delete landing
// in between removed the row and left the node running, unseen,
// undeletable and holding its port.
func TestCreateRacingDeleteOfNextID(t *testing.T) {
	e := newEnv(t, provision.Config{MaxNodesPerAccount: 1, MaxCreatesPerHour: -1, Ports: portRange(20)})
	acct := e.account(t, "mallory")
	ctx := t.Context()
	rounds := 80
	if testing.Short() {
		rounds = 20
	}
	var lastID int64
	for round := range rounds {
		next := lastID + 1
		var wg sync.WaitGroup
		var created provision.Node
		var createErr error
		start := make(chan struct{})
		createDone := make(chan struct{})
		wg.Go(func() {
			<-start
			defer close(createDone)
			created, createErr = e.p.Create(ctx, acct, "race")
		})
		for range 40 {
			wg.Go(func() {
				<-start
				// Keep deleting the next ID until Create returns, so some
				// Delete lands between the insert and the node's start.
				for {
					select {
					case <-createDone:
						return
					default:
					}
					e.p.Delete(ctx, acct, next)
				}
			})
		}
		close(start)
		wg.Wait()
		if createErr != nil {
			t.Fatalf("round %d: Create: %v", round, createErr)
		}
		lastID = created.ID
		// Whatever the interleaving, the node is either stored and running
		// or neither.
		checkConsistent(t, e, fmt.Sprintf("round %d (node %d)", round, created.ID))
		if err := e.p.Delete(ctx, acct, created.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		checkConsistent(t, e, fmt.Sprintf("round %d after cleanup", round))
	}
}

// TestStorm runs concurrent creates and deletes from several accounts,
// with a Shutdown landing in the middle of them and a restart (Restore by
// a new provisioner) after, then compares stored nodes, running nodes and
// listening ports.
func TestStorm(t *testing.T) {
	e := newEnv(t, provision.Config{MaxNodesPerAccount: 3, MaxCreatesPerHour: -1, Ports: portRange(30)})
	ctx := t.Context()
	accts := []int64{e.account(t, "a"), e.account(t, "b"), e.account(t, "c"), e.account(t, "d")}
	ops := 200
	if testing.Short() {
		ops = 40
	}
	for restart := range 3 {
		p := e.p
		var wg sync.WaitGroup
		var done sync.WaitGroup
		done.Add(8)
		for w := range 8 {
			wg.Go(func() {
				defer done.Done()
				rng := rand.New(rand.NewPCG(uint64(restart), uint64(w)))
				for i := range ops {
					acct := accts[rng.IntN(len(accts))]
					var err error
					switch rng.IntN(3) {
					case 0, 1:
						_, err = p.Create(ctx, acct, fmt.Sprintf("n%d-%d-%d", restart, w, i))
					case 2:
						// Delete a guessed ID, as an attacker would: often the
						// next one, often another account's.
						ns, _ := e.st.AllNodes(ctx)
						id := int64(1 + rng.IntN(3))
						if len(ns) > 0 {
							id = ns[len(ns)-1].ID + int64(rng.IntN(3)) - 1
						}
						err = p.Delete(ctx, acct, id)
					}
					switch {
					case errors.Is(err, provision.ErrClosed):
						return
					case err != nil && !errors.Is(err, store.ErrNodeLimit) && !errors.Is(err, provision.ErrNoPorts) && !errors.Is(err, store.ErrNotFound):
						t.Errorf("storm op: %v", err)
						return
					}
				}
			})
		}
		if restart > 0 {
			// Shut down in the middle of the storm.
			wg.Go(func() {
				for len(p.Running()) < 3 {
					runtime.Gosched()
				}
				if err := p.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})
		}
		wg.Wait()
		if restart == 0 {
			checkConsistent(t, e, "after a storm")
			if err := p.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if got := listening(t, e.cfg.Ports); len(got) != 0 {
			t.Fatalf("storm %d: after Shutdown, ports %v still listening", restart, got)
		}
		e.start(t)
		checkConsistent(t, e, fmt.Sprintf("after restart %d", restart))
	}
}
