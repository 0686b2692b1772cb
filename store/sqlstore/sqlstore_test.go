package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

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

// TestUpgradeInPlace opens a copy of testdata/schema-v1.db, a database
// written by the first released sqlstore (schema 0001 only), and checks
// that every migration gets applied and nothing is lost.
func TestUpgradeInPlace(t *testing.T) {
	old, err := os.ReadFile("testdata/schema-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	if err := os.WriteFile(file, old, 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := sqlstore.Status(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 || !before[0].Applied() {
		t.Fatalf("Status of the old database: got %+v, want 0001 applied", before)
	}
	s := open(t, file)
	after, err := sqlstore.Status(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if !m.Applied() {
			t.Errorf("after Open: migration %s pending", m.Name)
		}
	}
	ctx := t.Context()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a, err := s.SessionAccount(ctx, store.HashSecret("session-1"), at)
	if err != nil || a.Login != "octocat" || a.Provider != store.ProviderGitHub || a.ProviderID != "583231" {
		t.Fatalf("session of the old database: got %+v, %v", a, err)
	}
	if ta, err := s.TokenAccount(ctx, store.HashSecret("token-1")); err != nil || ta.ID != a.ID {
		t.Fatalf("token of the old database: got %+v, %v", ta, err)
	}
	ns, err := s.AllNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Node{
		{ID: 1, AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusRunning, CreatedAt: at},
		{ID: 2, AccountID: a.ID + 1, Name: "alices", Port: 4002, Status: store.StatusFailed, Reason: "port in use", CreatedAt: at},
	}
	if len(ns) != len(want) {
		t.Fatalf("nodes of the old database: got %+v, want %+v", ns, want)
	}
	for i := range want {
		if !reflect.DeepEqual(ns[i], want[i]) {
			t.Errorf("node %d of the old database: got %+v, want %+v", i, ns[i], want[i])
		}
	}
	// New rows go on from the old ones.
	n, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "third", Port: 4003, Status: store.StatusStarting}, 0)
	if err != nil || n.ID != 3 {
		t.Fatalf("CreateNode after the upgrade: got %+v, %v; want ID 3", n, err)
	}
}

// TestMigrateConcurrently opens one new file from several goroutines with
// separate connection pools: SQLite's write lock makes each migration
// apply once, and every Open succeeds.
func TestMigrateConcurrently(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = sqlstore.Migrate(context.WithoutCancel(t.Context()), file)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	ms, err := sqlstore.Status(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.Applied() {
			t.Errorf("migration %s pending", m.Name)
		}
	}
}

func TestStatusMissingFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "none.db")
	if _, err := sqlstore.Status(t.Context(), file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Status of a missing file: got %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("Status created the file")
	}
}

// TestStatusNewerDatabase: a file migrated by a newer build (a version
// this program does not have) is listed with that version, so that "db
// status" reports the schema the file has, not this program's latest.
func TestStatusNewerDatabase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	open(t, file)
	db, err := sql.Open("sqlite", file) // the driver sqlstore registers
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 1)`); err != nil {
		t.Fatal(err)
	}
	ms, err := sqlstore.Status(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if last.Version != 9999 || !last.Applied() || last.Name != "9999 (not in this program)" {
		t.Fatalf("Status of a file with migration 9999 applied: last is %+v", last)
	}
}
