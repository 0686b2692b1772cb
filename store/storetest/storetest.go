// Package storetest is the conformance suite for store.Store
// implementations. Each back end's tests call Run with a function that
// returns a new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openEmpty(t) })
//	}
//
// It is test support: import it only from _test.go files.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/store"
)

// Run runs every conformance test against stores made by open, which must
// return a new empty store and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"Accounts", testAccounts},
		{"Sessions", testSessions},
		{"Tokens", testTokens},
		{"TokenLimit", testTokenLimit},
		{"TokenLimitConcurrent", testTokenLimitConcurrent},
		{"Nodes", testNodes},
		{"NodeUniqueness", testNodeUniqueness},
		{"NodeLimit", testNodeLimit},
		{"NodeLimitConcurrent", testNodeLimitConcurrent},
		{"NodeIsolation", testNodeIsolation},
		{"NodeAllow", testNodeAllow},
		{"NodeNamedForwarding", testNodeNamedForwarding},
		{"TrimSessions", testTrimSessions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.f(t, open(t)) })
	}
}

func account(t *testing.T, s store.Store, login string) store.Account {
	t.Helper()
	a, err := s.UpsertAccount(t.Context(), store.ProviderLocal, login, login)
	if err != nil {
		t.Fatalf("UpsertAccount(%q): %v", login, err)
	}
	return a
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, err := s.UpsertAccount(ctx, store.ProviderGitHub, "583231", "octocat")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Provider != store.ProviderGitHub || a.ProviderID != "583231" || a.Login != "octocat" || a.CreatedAt.IsZero() {
		t.Fatalf("UpsertAccount: got %+v", a)
	}
	// A renamed GitHub user keeps the account.
	b, err := s.UpsertAccount(ctx, store.ProviderGitHub, "583231", "octocat2")
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != a.ID || b.Login != "octocat2" || !b.CreatedAt.Equal(a.CreatedAt) {
		t.Fatalf("second UpsertAccount: got %+v, want ID %d, login octocat2, created %v", b, a.ID, a.CreatedAt)
	}
	// The same id from another provider is another account.
	c, err := s.UpsertAccount(ctx, store.ProviderLocal, "583231", "octocat")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == a.ID {
		t.Fatalf("local account got the GitHub account's ID %d", a.ID)
	}
	got, err := s.Account(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Login != "octocat2" || got.ProviderID != "583231" {
		t.Fatalf("Account(%d): got %+v", a.ID, got)
	}
	_, err = s.Account(ctx, 1<<40)
	wantErr(t, "Account(unknown)", err, store.ErrNotFound)
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := account(t, s, "alice")
	now := time.Now()
	live := store.Session{Hash: store.HashSecret("live"), AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	old := store.Session{Hash: store.HashSecret("old"), AccountID: a.ID, CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	for _, se := range []store.Session{live, old} {
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.SessionAccount(ctx, live.Hash, now)
	if err != nil || got.ID != a.ID {
		t.Fatalf("SessionAccount(live): got %+v, %v; want account %d", got, err, a.ID)
	}
	_, err = s.SessionAccount(ctx, old.Hash, now)
	wantErr(t, "SessionAccount(expired)", err, store.ErrNotFound)
	_, err = s.SessionAccount(ctx, live.Hash, now.Add(2*time.Hour))
	wantErr(t, "SessionAccount(live, later)", err, store.ErrNotFound)
	_, err = s.SessionAccount(ctx, store.HashSecret("forged"), now)
	wantErr(t, "SessionAccount(forged)", err, store.ErrNotFound)

	if err := s.DeleteExpiredSessions(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionAccount(ctx, live.Hash, now); err != nil {
		t.Fatalf("DeleteExpiredSessions removed a live session: %v", err)
	}
	if err := s.DeleteSession(ctx, live.Hash); err != nil {
		t.Fatal(err)
	}
	_, err = s.SessionAccount(ctx, live.Hash, now)
	wantErr(t, "SessionAccount(deleted)", err, store.ErrNotFound)
	if err := s.DeleteSession(ctx, live.Hash); err != nil {
		t.Fatalf("DeleteSession twice: %v", err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := account(t, s, "alice"), account(t, s, "bob")
	t1, err := s.CreateToken(ctx, store.Token{AccountID: alice.ID, Name: "laptop", Hash: store.HashSecret("t1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if t1.ID == 0 || t1.CreatedAt.IsZero() {
		t.Fatalf("CreateToken: got %+v, want ID and CreatedAt set", t1)
	}
	t2, err := s.CreateToken(ctx, store.Token{AccountID: alice.ID, Name: "ci", Hash: store.HashSecret("t2")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateToken(ctx, store.Token{AccountID: bob.ID, Name: "bob", Hash: store.HashSecret("t3")}, 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenAccount(ctx, store.HashSecret("t2"))
	if err != nil || got.ID != alice.ID {
		t.Fatalf("TokenAccount(t2): got %+v, %v; want account %d", got, err, alice.ID)
	}
	_, err = s.TokenAccount(ctx, store.HashSecret("nope"))
	wantErr(t, "TokenAccount(unknown)", err, store.ErrNotFound)

	ts, err := s.Tokens(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].ID != t1.ID || ts[1].ID != t2.ID || ts[0].Name != "laptop" || ts[0].Hash != store.HashSecret("t1") {
		t.Fatalf("Tokens(alice): got %+v, want laptop then ci", ts)
	}
	wantErr(t, "DeleteToken(bob, alice's)", s.DeleteToken(ctx, bob.ID, t1.ID), store.ErrNotFound)
	if err := s.DeleteToken(ctx, alice.ID, t1.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.TokenAccount(ctx, store.HashSecret("t1"))
	wantErr(t, "TokenAccount(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteToken(deleted)", s.DeleteToken(ctx, alice.ID, t1.ID), store.ErrNotFound)
}

func testNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := account(t, s, "alice")
	n, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusStarting}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID == 0 || n.CreatedAt.IsZero() || n.Name != "demo" || n.Port != 4001 || n.Status != store.StatusStarting {
		t.Fatalf("CreateNode: got %+v", n)
	}
	if err := s.SetNodeStatus(ctx, n.ID, store.StatusFailed, "port in use"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Node(ctx, a.ID, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := n
	want.Status, want.Reason = store.StatusFailed, "port in use"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Node: got %+v, want %+v", got, want)
	}
	wantErr(t, "SetNodeStatus(unknown)", s.SetNodeStatus(ctx, 1<<40, store.StatusRunning, ""), store.ErrNotFound)

	n2, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "second", Port: 4002, Status: store.StatusRunning}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string]func() ([]store.Node, error){
		"Nodes":    func() ([]store.Node, error) { return s.Nodes(ctx, a.ID) },
		"AllNodes": func() ([]store.Node, error) { return s.AllNodes(ctx) },
	} {
		ns, err := list()
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 2 || ns[0].ID != n.ID || ns[1].ID != n2.ID {
			t.Fatalf("%s: got %+v, want demo then second", name, ns)
		}
	}
	if err := s.DeleteNode(ctx, a.ID, n.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Node(ctx, a.ID, n.ID)
	wantErr(t, "Node(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteNode(deleted)", s.DeleteNode(ctx, a.ID, n.ID), store.ErrNotFound)
	// A deleted node's name and port are free again, and IDs are not reused.
	n3, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusStarting}, 0)
	if err != nil {
		t.Fatalf("CreateNode with a deleted node's name and port: %v", err)
	}
	if n3.ID == n.ID || n3.ID == n2.ID {
		t.Fatalf("CreateNode reused ID %d", n3.ID)
	}
}

func testNodeUniqueness(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := account(t, s, "alice"), account(t, s, "bob")
	if _, err := s.CreateNode(ctx, store.Node{AccountID: alice.ID, Name: "demo", Port: 4001, Status: store.StatusRunning}, 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateNode(ctx, store.Node{AccountID: alice.ID, Name: "demo", Port: 4002, Status: store.StatusRunning}, 0)
	wantErr(t, "same name, same account", err, store.ErrNameTaken)
	_, err = s.CreateNode(ctx, store.Node{AccountID: bob.ID, Name: "demo", Port: 4002, Status: store.StatusRunning}, 0)
	wantErr(t, "same name, other account", err, store.ErrNameTaken)
	_, err = s.CreateNode(ctx, store.Node{AccountID: bob.ID, Name: "other", Port: 4001, Status: store.StatusRunning}, 0)
	wantErr(t, "same port", err, store.ErrPortTaken)
	ns, err := s.AllNodes(ctx)
	if err != nil || len(ns) != 1 {
		t.Fatalf("AllNodes after refused creates: got %d nodes, %v; want 1", len(ns), err)
	}
}

func testTokenLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := account(t, s, "alice"), account(t, s, "bob")
	for i := range 2 {
		if _, err := s.CreateToken(ctx, store.Token{AccountID: alice.ID, Name: "t", Hash: store.HashSecret(fmt.Sprintf("a%d", i))}, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.CreateToken(ctx, store.Token{AccountID: alice.ID, Name: "t", Hash: store.HashSecret("a2")}, 2)
	wantErr(t, "third token with limit 2", err, store.ErrTokenLimit)
	if _, err := s.TokenAccount(ctx, store.HashSecret("a2")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused token was stored: %v", err)
	}
	if _, err := s.CreateToken(ctx, store.Token{AccountID: bob.ID, Name: "t", Hash: store.HashSecret("b0")}, 2); err != nil {
		t.Fatalf("bob's first token: %v (the limit is per account)", err)
	}
	if _, err := s.CreateToken(ctx, store.Token{AccountID: alice.ID, Name: "t", Hash: store.HashSecret("a3")}, 0); err != nil {
		t.Fatalf("limit 0 (none): %v", err)
	}
}

func testTokenLimitConcurrent(t *testing.T, s store.Store) {
	ctx := context.WithoutCancel(t.Context())
	a := account(t, s, "alice")
	const n, limit = 8, 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateToken(ctx, store.Token{AccountID: a.ID, Name: "t", Hash: store.HashSecret(fmt.Sprintf("c%d", i))}, limit)
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrTokenLimit):
		default:
			t.Errorf("create %d: %v", i, err)
		}
	}
	ts, err := s.Tokens(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != limit || len(ts) != limit {
		t.Fatalf("%d concurrent creates with limit %d succeeded, %d stored; want %d", ok, limit, len(ts), limit)
	}
}

func testNodeLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := account(t, s, "alice"), account(t, s, "bob")
	for i := range 2 {
		if _, err := s.CreateNode(ctx, store.Node{AccountID: alice.ID, Name: fmt.Sprintf("a%d", i), Port: 4001 + i, Status: store.StatusRunning}, 2); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.CreateNode(ctx, store.Node{AccountID: alice.ID, Name: "a2", Port: 4010, Status: store.StatusRunning}, 2)
	wantErr(t, "third node with limit 2", err, store.ErrNodeLimit)
	if _, err := s.CreateNode(ctx, store.Node{AccountID: bob.ID, Name: "b0", Port: 4011, Status: store.StatusRunning}, 2); err != nil {
		t.Fatalf("bob's first node: %v (the limit is per account)", err)
	}
}

func testNodeLimitConcurrent(t *testing.T, s store.Store) {
	ctx := context.WithoutCancel(t.Context())
	a := account(t, s, "alice")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: fmt.Sprintf("n%d", i), Port: 5000 + i, Status: store.StatusStarting}, 1)
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrNodeLimit):
		default:
			t.Errorf("create %d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent creates with limit 1 succeeded, want 1", ok)
	}
}

func testNodeIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := account(t, s, "alice"), account(t, s, "bob")
	n, err := s.CreateNode(ctx, store.Node{AccountID: alice.ID, Name: "demo", Port: 4001, Status: store.StatusRunning}, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Node(ctx, bob.ID, n.ID)
	wantErr(t, "Node(bob, alice's)", err, store.ErrNotFound)
	wantErr(t, "DeleteNode(bob, alice's)", s.DeleteNode(ctx, bob.ID, n.ID), store.ErrNotFound)
	ns, err := s.Nodes(ctx, bob.ID)
	if err != nil || len(ns) != 0 {
		t.Fatalf("Nodes(bob): got %+v, %v; want none", ns, err)
	}
	if _, err := s.Node(ctx, alice.ID, n.ID); err != nil {
		t.Fatalf("alice's node after bob's delete: %v", err)
	}
}

func testNodeAllow(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := account(t, s, "alice"), account(t, s, "bob")
	n, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusRunning}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Allow) != 0 {
		t.Fatalf("new node: Allow = %v, want empty (open)", n.Allow)
	}
	allow := []netip.Prefix{netip.MustParsePrefix("203.0.113.7/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("127.0.0.1/32")}
	if err := s.SetNodeAllow(ctx, a.ID, n.ID, allow); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("127.0.0.1/32")}
	for name, get := range map[string]func() (store.Node, error){
		"Node": func() (store.Node, error) { return s.Node(ctx, a.ID, n.ID) },
		"AllNodes": func() (store.Node, error) {
			ns, err := s.AllNodes(ctx)
			if err != nil || len(ns) != 1 {
				return store.Node{}, fmt.Errorf("AllNodes: %v, %v", ns, err)
			}
			return ns[0], nil
		},
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Allow, want) {
			t.Fatalf("%s after SetNodeAllow: Allow = %v, want %v (masked, in order)", name, got.Allow, want)
		}
	}
	wantErr(t, "SetNodeAllow(another account's node)", s.SetNodeAllow(ctx, b.ID, n.ID, nil), store.ErrNotFound)
	if err := s.SetNodeAllow(ctx, a.ID, n.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Node(ctx, a.ID, n.ID); len(got.Allow) != 0 {
		t.Fatalf("after SetNodeAllow(nil): Allow = %v, want empty", got.Allow)
	}
}

func testNodeNamedForwarding(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := account(t, s, "alice"), account(t, s, "bob")
	n, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusRunning}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n.NamedForwarding {
		t.Fatal("new node has named forwarding on")
	}
	if err := s.SetNodeNamedForwarding(ctx, a.ID, n.ID, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Node(ctx, a.ID, n.ID); !got.NamedForwarding {
		t.Fatal("SetNodeNamedForwarding(true) not stored")
	}
	wantErr(t, "SetNodeNamedForwarding(another account's node)", s.SetNodeNamedForwarding(ctx, b.ID, n.ID, false), store.ErrNotFound)
	h1, h2 := store.HashSecret("one"), store.HashSecret("two")
	if err := s.SetNodeForwarderToken(ctx, a.ID, n.ID, "printer", h1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNodeForwarderToken(ctx, a.ID, n.ID, "scanner", h1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNodeForwarderToken(ctx, a.ID, n.ID, "printer", h2); err != nil {
		t.Fatalf("replacing a token: %v", err)
	}
	wantErr(t, "SetNodeForwarderToken(another account's node)", s.SetNodeForwarderToken(ctx, b.ID, n.ID, "evil", h1), store.ErrNotFound)
	got, err := s.NodeForwarderTokens(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]store.Hash{"printer": h2, "scanner": h1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("NodeForwarderTokens = %v, want %v", got, want)
	}
	wantErr(t, "DeleteNodeForwarderToken(another account's node)", s.DeleteNodeForwarderToken(ctx, b.ID, n.ID, "printer"), store.ErrNotFound)
	if err := s.DeleteNodeForwarderToken(ctx, a.ID, n.ID, "printer"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteNodeForwarderToken(deleted)", s.DeleteNodeForwarderToken(ctx, a.ID, n.ID, "printer"), store.ErrNotFound)
	if got, _ := s.NodeForwarderTokens(ctx, n.ID); len(got) != 1 {
		t.Fatalf("after delete: tokens %v, want scanner only", got)
	}
	// Deleting the node deletes its tokens: a new node with its ID
	// would not inherit them (IDs are not reused, but the rows must go).
	if err := s.DeleteNode(ctx, a.ID, n.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.NodeForwarderTokens(ctx, n.ID); err != nil || len(got) != 0 {
		t.Fatalf("tokens of a deleted node: %v, %v; want none", got, err)
	}
}

func testTrimSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := account(t, s, "alice"), account(t, s, "bob")
	now := time.Now()
	var hs []store.Hash
	for i := range 5 {
		h := store.HashSecret(fmt.Sprint("session", i))
		hs = append(hs, h)
		if err := s.CreateSession(ctx, store.Session{Hash: h, AccountID: a.ID, CreatedAt: now.Add(time.Duration(i) * time.Second), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	hb := store.HashSecret("bob's")
	if err := s.CreateSession(ctx, store.Session{Hash: hb, AccountID: b.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.TrimSessions(ctx, a.ID, 2, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("TrimSessions(keep 2 of 5) ended %d, want 3", n)
	}
	for i, h := range hs {
		_, err := s.SessionAccount(ctx, h, now)
		if i < 3 {
			wantErr(t, fmt.Sprintf("old session %d after trim", i), err, store.ErrNotFound)
		} else if err != nil {
			t.Fatalf("newest session %d after trim: %v", i, err)
		}
	}
	if _, err := s.SessionAccount(ctx, hb, now); err != nil {
		t.Fatalf("another account's session was trimmed: %v", err)
	}
	if n, err := s.TrimSessions(ctx, a.ID, 2, now); err != nil || n != 0 {
		t.Fatalf("second TrimSessions: %d, %v; want 0", n, err)
	}
}
