package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ockamhub/ockamhub/internal/pgtest"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
	"github.com/ockamhub/ockamhub/store/storetest"
)

func open(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.NewDatabase(t))
	})
}

// TestNodeLimitAcrossProcesses runs 20 concurrent creates for one account
// under a limit of 1 through two separate pools, as two serve processes
// sharing the database would: exactly one node is created.
func TestNodeLimitAcrossProcesses(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	stores := []*pgstore.Store{open(t, dsn), open(t, dsn)}
	ctx := context.WithoutCancel(t.Context())
	a, err := stores[0].UpsertAccount(ctx, store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = stores[i%2].CreateNode(ctx, store.Node{AccountID: a.ID, Name: fmt.Sprintf("n%d", i), Port: 5000 + i, Status: store.StatusStarting}, 1)
		})
	}
	close(start)
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
	ns, err := stores[1].Nodes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(ns) != 1 {
		t.Fatalf("%d of %d concurrent creates with limit 1 succeeded and %d nodes are stored, want 1 and 1", ok, n, len(ns))
	}
}

// TestMigrateConcurrently opens one new database from several pools at
// once: the advisory lock makes each migration apply once, and every Open
// succeeds.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := pgstore.Open(context.WithoutCancel(t.Context()), dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	ms, err := pgstore.Status(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.Applied() {
			t.Errorf("migration %s pending after Open", m.Name)
		}
	}
}

func TestMigrateAndStatus(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ms, err := pgstore.Status(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "0001_init" {
		t.Fatalf("Status of a new database: got %+v, want 0001_init first", ms)
	}
	for _, m := range ms {
		if m.Applied() {
			t.Fatalf("Status of a new database: %s applied", m.Name)
		}
	}
	applied, err := pgstore.Migrate(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("Migrate applied %d migrations, want %d", len(applied), len(ms))
	}
	again, err := pgstore.Migrate(t.Context(), dsn)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate: applied %+v, %v; want nothing", again, err)
	}
	ms, err = pgstore.Status(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if !m.AppliedAt.Equal(applied[i].AppliedAt) {
			t.Errorf("Status %s: applied at %v, want %v", m.Name, m.AppliedAt, applied[i].AppliedAt)
		}
	}
}

// TestUnreachable checks that a server that cannot be reached gives
// errors wrapping store.ErrUnavailable, and that the URL's password is
// not in them. It needs no PostgreSQL.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, dsn := range []string{
		"postgres://hub:s3cr3t-pw@" + addr + "/hub?sslmode=disable",
		"postgresql://hub@" + addr + "/hub?sslmode=disable&password=s3cr3t-pw",
	} {
		_, err := pgstore.Open(t.Context(), dsn)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Open(%s): got %v, want ErrUnavailable", pgstore.Redact(dsn), err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://hub:s3cr3t@db.example.com:5432/hub?sslmode=require", "postgres://hub:xxxxx@db.example.com:5432/hub?sslmode=require"},
		{"postgresql://hub@db/hub?password=s3cr3t", "postgresql://hub@db/hub?password=xxxxx"},
		{"postgres://db/hub", "postgres://db/hub"},
		{"postgres://hub@db/hub?sslmode=verify-full&sslpassword=keypass", "postgres://hub@db/hub?sslmode=verify-full&sslpassword=xxxxx"},
	} {
		if got := pgstore.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsURL(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://db/hub": true, "postgresql://db/hub": true,
		"sqlite:hub.db": false, "": false, "mysql://db": false, "Postgres://x": false,
	} {
		if got := pgstore.IsURL(in); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestUpgradeFromFirstSchema makes a database as the first pgstore did
// (migration 0001 only, with data), then opens it: the later migrations
// are applied in place and nothing is lost.
func TestUpgradeFromFirstSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := t.Context()
	first, err := os.ReadFile("migrations/postgres/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, q := range []string{
		string(first),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_init', now())`,
		`INSERT INTO accounts (provider, provider_id, login, created_at) VALUES ('github', '583231', 'octocat', '2026-11-30T12:00:00Z')`,
		`INSERT INTO sessions VALUES ('\x01` + strings.Repeat("00", 31) + `', 1, '2026-11-30T12:00:00Z', '2036-11-30T12:00:00Z')`,
		`INSERT INTO nodes (account_id, name, port, status, reason, created_at) VALUES (1, 'demo', 4001, 'running', '', '2026-11-30T12:00:00Z')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	s := open(t, dsn)
	ms, err := pgstore.Status(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("Status: %+v, want at least 2 migrations", ms)
	}
	for _, m := range ms {
		if !m.Applied() {
			t.Errorf("after Open: %s pending", m.Name)
		}
	}
	var h store.Hash
	h[0] = 1
	a, err := s.SessionAccount(ctx, h, at)
	if err != nil || a.Login != "octocat" {
		t.Fatalf("session of the old database: %+v, %v", a, err)
	}
	ns, err := s.AllNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Node{ID: 1, AccountID: a.ID, Name: "demo", Port: 4001, Status: store.StatusRunning, CreatedAt: at}
	if len(ns) != 1 || !reflect.DeepEqual(ns[0], want) {
		t.Fatalf("nodes of the old database: %+v, want %+v", ns, want)
	}
	// Two sessions in one millisecond: the one created last is kept.
	for _, b := range []byte{2, 3} {
		var hb store.Hash
		hb[0] = b
		if err := s.CreateSession(ctx, store.Session{Hash: hb, AccountID: a.ID, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.TrimSessions(ctx, a.ID, 1, at); err != nil || n != 2 {
		t.Fatalf("TrimSessions(keep 1): %d, %v; want 2 ended", n, err)
	}
	h[0] = 3
	if _, err := s.SessionAccount(ctx, h, at); err != nil {
		t.Fatalf("the newest session was trimmed: %v", err)
	}
}
