package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ockamhub/ockamhub/internal/pgtest"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
)

// testStatementTimeout is the statement_timeout of the stores these tests
// open; waitLimit is how long a test waits before it calls a call hung.
const (
	testStatementTimeout = 300 * time.Millisecond
	waitLimit            = 60 * time.Second
)

// TestStatementTimeout holds the lock CreateNode needs (the account's row)
// from another session that never commits, as a stuck process would: the
// call must fail with store.ErrUnavailable after the statement timeout
// instead of waiting for ever with a context that has no deadline (an
// HTTP handler would hang with it).
func TestStatementTimeout(t *testing.T) {
	defer pgstore.SetDefaultStatementTimeout(testStatementTimeout)()
	dsn := pgtest.NewDatabase(t)
	s := open(t, dsn)
	ctx := context.Background()
	a, err := s.UpsertAccount(ctx, store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT id FROM accounts WHERE id = $1 FOR UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateNode(ctx, store.Node{AccountID: a.ID, Name: "n1", Port: 5001, Status: store.StatusStarting}, 1)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("CreateNode behind a held lock: %v, want store.ErrUnavailable", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("CreateNode behind a held lock still waiting after %v (statement timeout %v)", waitLimit, testStatementTimeout)
	}
	// The pool's connections are still usable afterwards.
	if _, err := s.Account(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateWaitsPastStatementTimeout: a process migrating waits for
// another's migrations for as long as they take, not for the statement
// timeout of ordinary queries.
func TestMigrateWaitsPastStatementTimeout(t *testing.T) {
	defer pgstore.SetDefaultStatementTimeout(testStatementTimeout)()
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	const migrationLock int64 = 0x2f1b6a4c3e5d7081 // pgstore's key
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pgstore.Migrate(ctx, dsn)
		done <- err
	}()
	// Wait until Migrate is blocked on the lock, then for several times
	// the statement timeout: it must still be waiting.
	deadline := time.Now().Add(waitLimit)
	for {
		var waiting bool
		if err := holder.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Migrate returned while another process held the migration lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Migrate never waited for the migration lock")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	select {
	case err := <-done:
		t.Fatalf("Migrate gave up waiting for the migration lock after less than %v: %v", 5*testStatementTimeout, err)
	case <-time.After(5 * testStatementTimeout):
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Migrate after the lock was released: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Migrate still waiting after the lock was released")
	}
	// The pool's connections keep the statement timeout after migrating.
	s := open(t, dsn)
	if _, err := s.Account(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Account on an empty database: %v, want store.ErrNotFound", err)
	}
}

// TestMigrationMismatch: a database recording one of this program's
// migration versions under another name (migrated by a different build)
// is refused, with an error that says so and is not store.ErrUnavailable.
func TestMigrationMismatch(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := pgstore.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET name = '0002_something_else' WHERE version = 2`); err != nil {
		t.Fatal(err)
	}
	_, err = pgstore.Open(ctx, dsn)
	if !errors.Is(err, pgstore.ErrMigrationMismatch) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open of a database migrated by another build: %v, want pgstore.ErrMigrationMismatch (and not store.ErrUnavailable)", err)
	}
	if !strings.Contains(err.Error(), "0002_something_else") {
		t.Errorf("error %q does not name the recorded migration", err)
	}
}

// TestMalformedURLNotUnavailable: a URL that cannot be parsed is a usage
// error, not a database that is down (serve would say "unavailable" and an
// operator would look at the server); the password stays out of it.
func TestMalformedURLNotUnavailable(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:se/cret@127.0.0.1:1/db",
		"postgres://u:secret@127.0.0.1:99999/db",
		"postgres://u:secret@127.0.0.1:1/db?sslmode=bogus",
		"postgres://u:sec%zzret@127.0.0.1:1/db",
		"postgres://u@127.0.0.1:99999/db?sslpassword=secret",
		"postgres://u:s%20ecret@127.0.0.1:99999/db?sslpassword=secret",
	} {
		_, err := pgstore.Open(context.Background(), dsn)
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Open(%s): %v, want an error that is not store.ErrUnavailable", pgstore.Redact(dsn), err)
			continue
		}
		if strings.Contains(err.Error(), "ecret") {
			t.Errorf("Open's error shows the password: %v", err)
		}
	}
}

// TestStatusNewerDatabase: a database migrated by a newer build lists the
// version this program does not have, so that "db status" reports the
// schema the database has.
func TestStatusNewerDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := pgstore.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', now())`); err != nil {
		t.Fatal(err)
	}
	ms, err := pgstore.Status(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	if last.Version != 9999 || !last.Applied() || last.Name != "9999_future (not in this program)" {
		t.Fatalf("Status of a database with 9999_future applied: last is %+v", last)
	}
}
