package sqlstore_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/store/storetest"
)

func open(t *testing.T, file string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "ockamhub.db"))
	})
}

// TestReopen checks that data and the schema survive closing and reopening
// the database, and that migrations are not applied twice.
func TestReopen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	s := open(t, file)
	a, err := s.UpsertAccount(t.Context(), store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.CreateNode(t.Context(), store.Node{AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusRunning}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, file)
	got, err := s.Node(t.Context(), a.ID, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, n) {
		t.Fatalf("node after reopen: got %+v, want %+v", got, n)
	}
}
