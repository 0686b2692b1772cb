package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/store"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/sqlite/*.sql
var migrations embed.FS

// Store is a store.Store on a SQLite database. It is safe for concurrent
// use; Close it when done.
type Store struct {
	db *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database in file and brings
// its schema up to date (see Migrate). The file and its -wal and -shm
// companions are made FileMode first (see SecureFiles; call it yourself to
// learn which were wider).
func Open(ctx context.Context, file string) (*Store, error) {
	if _, err := SecureFiles(file); err != nil {
		return nil, err
	}
	s, err := open(file, false)
	if err != nil {
		return nil, err
	}
	if _, err := s.migrateRetry(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("sqlstore: %s: %w", file, err)
	}
	return s, nil
}

func open(file string, readOnly bool) (*Store, error) {
	q := url.Values{}
	// busy_timeout first: the pragmas run in this order on every new
	// connection, and switching a new file to WAL takes a lock that
	// another process opening it at the same moment may hold.
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	if readOnly {
		q.Set("mode", "ro")
	}
	dsn := "file:" + file + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", file, err)
	}
	// SQLite has one writer; a few readers are plenty for a control plane.
	db.SetMaxOpenConns(4)
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Migrate opens (creating if needed, with FileMode) the SQLite database in
// file, applies the migrations it lacks and returns those it applied. Open
// does the same.
func Migrate(ctx context.Context, file string) ([]store.Migration, error) {
	if _, err := SecureFiles(file); err != nil {
		return nil, err
	}
	s, err := open(file, false)
	if err != nil {
		return nil, err
	}
	defer s.db.Close()
	applied, err := s.migrateRetry(ctx)
	if err != nil {
		return applied, fmt.Errorf("sqlstore: %s: %w", file, err)
	}
	return applied, nil
}

// Status lists every migration known to this program, with the time each
// was applied to the database in file (zero when pending). It changes
// nothing; the file must exist.
func Status(ctx context.Context, file string) ([]store.Migration, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	s, err := open(file, true)
	if err != nil {
		return nil, err
	}
	defer s.db.Close()
	files, err := store.MigrationFiles(migrations, "migrations/sqlite")
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", file, err)
	}
	if n > 0 {
		rows, err := s.db.QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations`)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: %s: %w", file, err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				return nil, err
			}
			applied[v] = fromMS(at)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]store.Migration, 0, len(files))
	for _, f := range files {
		out = append(out, store.Migration{Version: f.Version, Name: f.Name, AppliedAt: applied[f.Version]})
		delete(applied, f.Version)
	}
	// Versions this program does not know were applied by a newer build:
	// list them too, so that the schema's version is the file's.
	for v, at := range applied {
		out = append(out, store.Migration{Version: v, Name: fmt.Sprintf("%04d (not in this program)", v), AppliedAt: at})
	}
	slices.SortFunc(out, func(a, b store.Migration) int { return a.Version - b.Version })
	return out, nil
}

// migrateRetry is migrate, tried again while the file is busy: processes
// opening a new file at the same moment can get SQLITE_BUSY at once, without
// the busy timeout, while one of them switches it to WAL. Each attempt
// re-checks what is applied, so retrying is safe.
func (s *Store) migrateRetry(ctx context.Context) ([]store.Migration, error) {
	delay := 5 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		applied, err := s.migrate(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return applied, err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return applied, err
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY,
// any extended code).
func isBusy(err error) bool {
	e, ok := errors.AsType[*sqlite.Error](err)
	return ok && e.Code()&0xff == 5 // SQLITE_BUSY
}

// migrate applies the embedded migrations not yet recorded, each in its
// own IMMEDIATE transaction: SQLite's write lock serialises processes that
// open the same file together, and each re-checks schema_migrations under
// the lock, so a migration is applied exactly once.
func (s *Store) migrate(ctx context.Context) ([]store.Migration, error) {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("migrations table: %w", err)
	}
	files, err := store.MigrationFiles(migrations, "migrations/sqlite")
	if err != nil {
		return nil, err
	}
	var applied []store.Migration
	for _, f := range files {
		if err := s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, f.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, f.SQL); err != nil {
				return err
			}
			now := time.Now()
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, f.Version, ms(now)); err != nil {
				return err
			}
			applied = append(applied, store.Migration{Version: f.Version, Name: f.Name, AppliedAt: fromMS(ms(now))})
			return nil
		}); err != nil {
			return applied, fmt.Errorf("migration %s: %w", f.Name, err)
		}
	}
	return applied, nil
}

// tx runs f in a transaction, committing if it returns nil.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64     { return t.UnixMilli() }
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// uniqueViolation reports whether err is a UNIQUE constraint failure
// mentioning column (e.g. "nodes.name").
func uniqueViolation(err error, column string) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(se.Error(), column)
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

const accountCols = `a.id, a.provider, a.provider_id, a.login, a.created_at`

func scanAccount(row interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var created int64
	if err := row.Scan(&a.ID, &a.Provider, &a.ProviderID, &a.Login, &created); err != nil {
		return store.Account{}, notFound(err)
	}
	a.CreatedAt = fromMS(created)
	return a, nil
}

// UpsertAccount implements store.Store.
func (s *Store) UpsertAccount(ctx context.Context, provider, providerID, login string) (store.Account, error) {
	row := s.db.QueryRowContext(ctx, `INSERT INTO accounts (provider, provider_id, login, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (provider, provider_id) DO UPDATE SET login = excluded.login
		RETURNING id, provider, provider_id, login, created_at`, provider, providerID, login, ms(time.Now()))
	a, err := scanAccount(row)
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlstore: upsert account: %w", err)
	}
	return a, nil
}

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, id int64) (store.Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts a WHERE a.id = ?`, id))
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (hash, account_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		se.Hash[:], se.AccountID, ms(nowOr(se.CreatedAt)), ms(se.ExpiresAt))
	if err != nil {
		return fmt.Errorf("sqlstore: create session: %w", err)
	}
	return nil
}

// SessionAccount implements store.Store.
func (s *Store) SessionAccount(ctx context.Context, h store.Hash, now time.Time) (store.Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+`
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.hash = ? AND s.expires_at > ?`, h[:], ms(now)))
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, h store.Hash) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, h[:])
	return err
}

// DeleteExpiredSessions implements store.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, ms(now))
	return err
}

// CreateToken implements store.Store. The count and the insert are one
// write transaction (BEGIN IMMEDIATE), so writers are serialised.
func (s *Store) CreateToken(ctx context.Context, t store.Token, limit int) (store.Token, error) {
	t.CreatedAt = nowOr(t.CreatedAt)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if limit > 0 {
			var have int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM tokens WHERE account_id = ?`, t.AccountID).Scan(&have); err != nil {
				return err
			}
			if have >= limit {
				return store.ErrTokenLimit
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO tokens (account_id, name, hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
			t.AccountID, t.Name, t.Hash[:], ms(t.CreatedAt)).Scan(&t.ID)
	})
	if errors.Is(err, store.ErrTokenLimit) {
		return store.Token{}, err
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlstore: create token: %w", err)
	}
	t.CreatedAt = fromMS(ms(t.CreatedAt))
	return t, nil
}

// TokenAccount implements store.Store.
func (s *Store) TokenAccount(ctx context.Context, h store.Hash) (store.Account, error) {
	return scanAccount(s.db.QueryRowContext(ctx, `SELECT `+accountCols+`
		FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?`, h[:]))
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, accountID int64) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, account_id, name, hash, created_at FROM tokens WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ts []store.Token
	for rows.Next() {
		var t store.Token
		var h []byte
		var created int64
		if err := rows.Scan(&t.ID, &t.AccountID, &t.Name, &h, &created); err != nil {
			return nil, err
		}
		copy(t.Hash[:], h)
		t.CreatedAt = fromMS(created)
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, accountID, id int64) error {
	return s.deleteOwned(ctx, "tokens", accountID, id)
}

func (s *Store) deleteOwned(ctx context.Context, table string, accountID, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE id = ? AND account_id = ?`, id, accountID)
	return affected(res, err)
}

const nodeCols = `id, account_id, name, port, status, reason, created_at, allow_cidrs, named_forwarding`

func scanNode(row interface{ Scan(...any) error }) (store.Node, error) {
	var n store.Node
	var created int64
	var allow string
	if err := row.Scan(&n.ID, &n.AccountID, &n.Name, &n.Port, &n.Status, &n.Reason, &created, &allow, &n.NamedForwarding); err != nil {
		return store.Node{}, notFound(err)
	}
	n.CreatedAt = fromMS(created)
	for _, f := range strings.Fields(allow) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return store.Node{}, fmt.Errorf("sqlstore: node %d: stored allow-list: %w", n.ID, err)
		}
		n.Allow = append(n.Allow, p)
	}
	return n, nil
}

func formatAllow(allow []netip.Prefix) string {
	fs := make([]string, len(allow))
	for i, p := range allow {
		fs[i] = p.Masked().String()
	}
	return strings.Join(fs, " ")
}

// CreateNode implements store.Store.
func (s *Store) CreateNode(ctx context.Context, n store.Node, limit int) (store.Node, error) {
	n.CreatedAt = fromMS(ms(nowOr(n.CreatedAt)))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if limit > 0 {
			var have int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM nodes WHERE account_id = ?`, n.AccountID).Scan(&have); err != nil {
				return err
			}
			if have >= limit {
				return store.ErrNodeLimit
			}
		}
		return tx.QueryRowContext(ctx, `INSERT INTO nodes (account_id, name, port, status, reason, created_at, allow_cidrs, named_forwarding)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			n.AccountID, n.Name, n.Port, string(n.Status), n.Reason, ms(n.CreatedAt), formatAllow(n.Allow), n.NamedForwarding).Scan(&n.ID)
	})
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, store.ErrNodeLimit):
		return store.Node{}, err
	case uniqueViolation(err, "nodes.name"):
		return store.Node{}, store.ErrNameTaken
	case uniqueViolation(err, "nodes.port"):
		return store.Node{}, store.ErrPortTaken
	}
	return store.Node{}, fmt.Errorf("sqlstore: create node: %w", err)
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, accountID, id int64) (store.Node, error) {
	return scanNode(s.db.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = ? AND account_id = ?`, id, accountID))
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context, accountID int64) ([]store.Node, error) {
	return s.nodes(ctx, `SELECT `+nodeCols+` FROM nodes WHERE account_id = ? ORDER BY id`, accountID)
}

// AllNodes implements store.Store.
func (s *Store) AllNodes(ctx context.Context) ([]store.Node, error) {
	return s.nodes(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
}

func (s *Store) nodes(ctx context.Context, query string, args ...any) ([]store.Node, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ns []store.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	return ns, rows.Err()
}

// SetNodeStatus implements store.Store.
func (s *Store) SetNodeStatus(ctx context.Context, id int64, st store.Status, reason string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE nodes SET status = ?, reason = ? WHERE id = ?`, string(st), reason, id)
	return affected(res, err)
}

// DeleteNode implements store.Store.
func (s *Store) DeleteNode(ctx context.Context, accountID, id int64) error {
	return s.deleteOwned(ctx, "nodes", accountID, id)
}

// updateOwned runs an UPDATE of an account's node; ErrNotFound when no
// row matched.
func (s *Store) updateOwned(ctx context.Context, set string, accountID, id int64, args ...any) error {
	res, err := s.db.ExecContext(ctx, `UPDATE nodes SET `+set+` WHERE id = ? AND account_id = ?`, append(args, id, accountID)...)
	return affected(res, err)
}

// SetNodeAllow implements store.Store.
func (s *Store) SetNodeAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) error {
	return s.updateOwned(ctx, `allow_cidrs = ?`, accountID, id, formatAllow(allow))
}

// SetNodeNamedForwarding implements store.Store.
func (s *Store) SetNodeNamedForwarding(ctx context.Context, accountID, id int64, enabled bool) error {
	return s.updateOwned(ctx, `named_forwarding = ?`, accountID, id, enabled)
}

// SetNodeForwarderToken implements store.Store.
func (s *Store) SetNodeForwarderToken(ctx context.Context, accountID, id int64, name string, h store.Hash) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO node_forwarder_tokens (node_id, name, hash)
		SELECT id, ?, ? FROM nodes WHERE id = ? AND account_id = ?
		ON CONFLICT (node_id, name) DO UPDATE SET hash = excluded.hash`, name, h[:], id, accountID)
	if err != nil {
		return fmt.Errorf("sqlstore: set forwarder token: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteNodeForwarderToken implements store.Store.
func (s *Store) DeleteNodeForwarderToken(ctx context.Context, accountID, id int64, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM node_forwarder_tokens
		WHERE name = ? AND node_id IN (SELECT id FROM nodes WHERE id = ? AND account_id = ?)`, name, id, accountID)
	return affected(res, err)
}

// NodeForwarderTokens implements store.Store.
func (s *Store) NodeForwarderTokens(ctx context.Context, id int64) (map[string]store.Hash, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, hash FROM node_forwarder_tokens WHERE node_id = ?`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]store.Hash{}
	for rows.Next() {
		var name string
		var h []byte
		if err := rows.Scan(&name, &h); err != nil {
			return nil, err
		}
		var hh store.Hash
		copy(hh[:], h)
		out[name] = hh
	}
	return out, rows.Err()
}

// TrimSessions implements store.Store.
func (s *Store) TrimSessions(ctx context.Context, accountID int64, keep int, now time.Time) (int, error) {
	if keep < 0 {
		keep = 0
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE account_id = ? AND expires_at > ? AND hash NOT IN (
		SELECT hash FROM sessions WHERE account_id = ? AND expires_at > ?
		ORDER BY created_at DESC, rowid DESC LIMIT ?)`, accountID, ms(now), accountID, ms(now), keep)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: trim sessions: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// affected turns the result of a statement on one owned row into nil, or
// store.ErrNotFound when no row matched.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
