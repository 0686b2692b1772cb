package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ockamhub/ockamhub/store"
)

//go:embed migrations/postgres/*.sql
var migrations embed.FS

// ErrMigrationMismatch means that the database records a migration under
// the same version as one of this program's but with another name: it was
// migrated by a different build, and this one refuses to touch it.
var ErrMigrationMismatch = errors.New("pgstore: the database's migrations are not this program's")

// migrationLock is the key of the advisory lock held while migrating
// (the first 8 bytes of SHA-256("ockamhub schema migrations")).
const migrationLock int64 = 0x2f1b6a4c3e5d7081

// defaultConnectTimeout bounds a connection attempt when the URL does not
// set connect_timeout, so that an unreachable server fails requests
// quickly instead of holding them.
const defaultConnectTimeout = 5 * time.Second

// defaultStatementTimeout is the server-side statement_timeout of the
// pool's connections when the URL does not set one: a statement that waits
// longer (a lock held by a stuck session, an overloaded server) is
// cancelled and reported as store.ErrUnavailable, so that no HTTP handler
// waits on the database for ever. Migrations run without it. Short enough
// that a request waiting for another's statement (provision runs one
// change at a time) still answers within serve's 30 s write timeout. A
// variable so that tests can shorten it.
var defaultStatementTimeout = 10 * time.Second

// clientTimeoutMargin is how much longer than the statement timeout the
// client waits for an answer before it gives up on the connection itself:
// statement_timeout needs a server that hears the cancellation, and a
// network that drops packets (a partition, a dead host) would otherwise
// keep a query, and its HTTP handler, waiting for as long as TCP takes to
// notice (a quarter of an hour on Linux). A variable so that tests can
// shorten it.
var clientTimeoutMargin = 5 * time.Second

// deadlineTracer bounds every statement of a pool by a client-side
// timeout: pgx runs a query under the context its tracer returns.
type deadlineTracer struct{ d time.Duration }

type cancelKey struct{}

// noDeadlineKey marks a context whose statements may wait for ever
// (migrations: waiting for the migration lock, long schema changes).
type noDeadlineKey struct{}

func (t deadlineTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if ctx.Value(noDeadlineKey{}) != nil {
		return ctx
	}
	ctx, cancel := context.WithTimeout(ctx, t.d)
	return context.WithValue(ctx, cancelKey{}, cancel)
}

func (deadlineTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use;
// Close it when done.
type Store struct {
	pool    *pgxpool.Pool
	secrets []string // the URL's passwords, scrubbed from errors
}

var _ store.Store = (*Store)(nil)

// IsURL reports whether dsn is a PostgreSQL URL (postgres:// or
// postgresql://).
func IsURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Redact returns dsn with its password, if any, replaced by "xxxxx", for
// logs and messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	q := u.Query()
	changed := false
	for _, k := range secretParams {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// secretParams are the URL parameters that hold secrets: the password,
// and the passphrase of the client's TLS key.
var secretParams = []string{"password", "sslpassword"}

// passwords returns the secrets in dsn (see secretParams), as they may
// appear in an error's text.
func passwords(dsn string) []string {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p, url.UserPassword("", p).String()[1:]) // as given, and escaped
	}
	for _, k := range secretParams {
		for _, v := range u.Query()[k] {
			if v != "" {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	return out
}

// Open connects to the PostgreSQL database at dsn (a postgres:// URL) and
// brings its schema up to date (see Migrate).
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{secrets: passwords(dsn)}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, s.wrap("parse URL", err)
	}
	if !strings.Contains(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	stmt := defaultStatementTimeout
	if v, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(defaultStatementTimeout.Milliseconds())
	} else if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
		stmt = time.Duration(ms) * time.Millisecond
	}
	if cfg.ConnConfig.Tracer == nil {
		cfg.ConnConfig.Tracer = deadlineTracer{d: stmt + clientTimeoutMargin}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.wrap("connect", err)
	}
	s.pool = pool
	return s, nil
}

// Close closes the pool's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers; its error wraps
// store.ErrUnavailable when it does not.
func (s *Store) Ping(ctx context.Context) error {
	return s.wrap("ping", s.pool.Ping(ctx))
}

// Migrate connects to the database at dsn, applies the migrations it lacks
// under an advisory lock and returns those it applied. Open does the same.
func Migrate(ctx context.Context, dsn string) ([]store.Migration, error) {
	s, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.migrate(ctx)
}

// Status lists every migration known to this program, with the time each
// was applied to the database at dsn (zero when pending). It changes
// nothing.
func Status(ctx context.Context, dsn string) ([]store.Migration, error) {
	s, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	files, err := store.MigrationFiles(migrations, "migrations/postgres")
	if err != nil {
		return nil, err
	}
	applied := map[int]store.Migration{}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, s.wrap("status", err)
	}
	if exists {
		rows, err := s.pool.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations`)
		if err != nil {
			return nil, s.wrap("status", err)
		}
		for rows.Next() {
			var m store.Migration
			if err := rows.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
				rows.Close()
				return nil, s.wrap("status", err)
			}
			m.AppliedAt = m.AppliedAt.UTC()
			applied[m.Version] = m
		}
		if err := rows.Err(); err != nil {
			return nil, s.wrap("status", err)
		}
	}
	out := make([]store.Migration, 0, len(files))
	for _, f := range files {
		out = append(out, store.Migration{Version: f.Version, Name: f.Name, AppliedAt: applied[f.Version].AppliedAt})
		delete(applied, f.Version)
	}
	// Versions this program does not know were applied by a newer build:
	// list them too, so that the schema's version is the database's.
	for _, m := range applied {
		m.Name += " (not in this program)"
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b store.Migration) int { return a.Version - b.Version })
	return out, nil
}

// migrate applies the embedded migrations not yet recorded, each in its
// own transaction, while holding a session advisory lock on one
// connection: processes migrating together wait for each other, and each
// re-reads schema_migrations under the lock.
func (s *Store) migrate(ctx context.Context) ([]store.Migration, error) {
	files, err := store.MigrationFiles(migrations, "migrations/postgres")
	if err != nil {
		return nil, err
	}
	ctx = context.WithValue(ctx, noDeadlineKey{}, true)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, s.wrap("migrate", err)
	}
	defer conn.Release()
	// Waiting for another process's migrations, and a migration itself,
	// may take longer than a request's statement_timeout.
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return nil, s.wrap("migrate", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return nil, s.wrap("migration lock", err)
	}
	defer func() {
		// An unlock that fails leaves the lock to end with the session:
		// close the connection rather than return it to the pool.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER     PRIMARY KEY,
		name       TEXT        NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL
	)`); err != nil {
		return nil, s.wrap("migrations table", err)
	}
	var applied []store.Migration
	for _, f := range files {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// A version recorded under another name was applied by a
			// build whose migration of that number is a different change:
			// going on would leave the schema neither one's.
			var name string
			switch err := tx.QueryRow(ctx, `SELECT name FROM schema_migrations WHERE version = $1`, f.Version).Scan(&name); {
			case err == nil && name != f.Name:
				return fmt.Errorf("%w: version %d is recorded as %q, this program's is %q", ErrMigrationMismatch, f.Version, name, f.Name)
			case err == nil:
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
			// No arguments: the simple protocol runs the file's statements.
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return err
			}
			now := msTime(time.Now())
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, f.Version, f.Name, now); err != nil {
				return err
			}
			applied = append(applied, store.Migration{Version: f.Version, Name: f.Name, AppliedAt: now})
			return nil
		})
		if err != nil {
			return applied, s.wrap("migration "+f.Name, err)
		}
	}
	return applied, nil
}

// msTime returns t at millisecond precision in UTC, as stored (and as
// sqlstore keeps times).
func msTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// unavailable reports whether err means the server could not be reached
// or went away, rather than that it refused the statement.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, ErrMigrationMismatch) {
		return false
	}
	if _, ok := errors.AsType[*pgconn.ParseConfigError](err); ok {
		return false // a malformed URL: retrying will not help
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "57P"), // admin shutdown, crash shutdown, cannot connect now
			pe.Code == "53300",                // too many connections
			pe.Code == "57014":                // query_canceled: statement_timeout
			return true
		}
		return false
	}
	// Anything else is the client's side of a failed conversation: a
	// refused or broken connection, a timeout, a closed pool.
	return true
}

// wrap annotates a database error: "not found" becomes store.ErrNotFound,
// a lost server wraps store.ErrUnavailable, and the URL's password never
// appears in the text.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var e error
	if unavailable(err) {
		e = fmt.Errorf("pgstore: %s: %w: %w", op, store.ErrUnavailable, err)
	} else {
		e = fmt.Errorf("pgstore: %s: %w", op, err)
	}
	msg := e.Error()
	for _, sec := range s.secrets {
		msg = strings.ReplaceAll(msg, sec, "xxxxx")
	}
	if msg != e.Error() {
		return &scrubbed{msg: msg, err: e}
	}
	return e
}

// scrubbed is an error whose text had the password removed; errors.Is and
// errors.As still see the original.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

const accountCols = `a.id, a.provider, a.provider_id, a.login, a.created_at`

func (s *Store) scanAccount(op string, row pgx.Row) (store.Account, error) {
	var a store.Account
	if err := row.Scan(&a.ID, &a.Provider, &a.ProviderID, &a.Login, &a.CreatedAt); err != nil {
		return store.Account{}, s.wrap(op, err)
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}

// UpsertAccount implements store.Store.
func (s *Store) UpsertAccount(ctx context.Context, provider, providerID, login string) (store.Account, error) {
	return s.scanAccount("upsert account", s.pool.QueryRow(ctx, `INSERT INTO accounts AS a (provider, provider_id, login, created_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (provider, provider_id) DO UPDATE SET login = excluded.login
		RETURNING `+accountCols, provider, providerID, login, msTime(time.Now())))
}

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, id int64) (store.Account, error) {
	return s.scanAccount("account", s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts a WHERE a.id = $1`, id))
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (hash, account_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		se.Hash[:], se.AccountID, msTime(nowOr(se.CreatedAt)), msTime(se.ExpiresAt))
	return s.wrap("create session", err)
}

// SessionAccount implements store.Store.
func (s *Store) SessionAccount(ctx context.Context, h store.Hash, now time.Time) (store.Account, error) {
	return s.scanAccount("session", s.pool.QueryRow(ctx, `SELECT `+accountCols+`
		FROM sessions s JOIN accounts a ON a.id = s.account_id
		WHERE s.hash = $1 AND s.expires_at > $2`, h[:], msTime(now)))
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, h store.Hash) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, h[:])
	return s.wrap("delete session", err)
}

// DeleteExpiredSessions implements store.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, msTime(now))
	return s.wrap("delete expired sessions", err)
}

// CreateToken implements store.Store. With a limit, the account's row is
// locked for the transaction, so creates for one account are serialised
// across every process sharing the database.
func (s *Store) CreateToken(ctx context.Context, t store.Token, limit int) (store.Token, error) {
	t.CreatedAt = msTime(nowOr(t.CreatedAt))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if limit > 0 {
			var id int64
			if err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE id = $1 FOR UPDATE`, t.AccountID).Scan(&id); err != nil {
				return err
			}
			var have int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM tokens WHERE account_id = $1`, t.AccountID).Scan(&have); err != nil {
				return err
			}
			if have >= limit {
				return store.ErrTokenLimit
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO tokens (account_id, name, hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			t.AccountID, t.Name, t.Hash[:], t.CreatedAt).Scan(&t.ID)
	})
	if errors.Is(err, store.ErrTokenLimit) {
		return store.Token{}, err
	}
	if err != nil {
		return store.Token{}, s.wrap("create token", err)
	}
	return t, nil
}

// TokenAccount implements store.Store.
func (s *Store) TokenAccount(ctx context.Context, h store.Hash) (store.Account, error) {
	return s.scanAccount("token", s.pool.QueryRow(ctx, `SELECT `+accountCols+`
		FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = $1`, h[:]))
}

// Tokens implements store.Store.
func (s *Store) Tokens(ctx context.Context, accountID int64) ([]store.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, account_id, name, hash, created_at FROM tokens WHERE account_id = $1 ORDER BY id`, accountID)
	if err != nil {
		return nil, s.wrap("tokens", err)
	}
	var ts []store.Token
	for rows.Next() {
		var t store.Token
		var h []byte
		if err := rows.Scan(&t.ID, &t.AccountID, &t.Name, &h, &t.CreatedAt); err != nil {
			rows.Close()
			return nil, s.wrap("tokens", err)
		}
		copy(t.Hash[:], h)
		t.CreatedAt = t.CreatedAt.UTC()
		ts = append(ts, t)
	}
	return ts, s.wrap("tokens", rows.Err())
}

// DeleteToken implements store.Store.
func (s *Store) DeleteToken(ctx context.Context, accountID, id int64) error {
	return s.deleteOwned(ctx, "tokens", accountID, id)
}

func (s *Store) deleteOwned(ctx context.Context, table string, accountID, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE id = $1 AND account_id = $2`, id, accountID)
	if err != nil {
		return s.wrap("delete from "+table, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

const nodeCols = `id, account_id, name, port, status, reason, created_at, allow_cidrs, named_forwarding`

func scanNode(row pgx.Row) (store.Node, error) {
	var n store.Node
	var status string
	if err := row.Scan(&n.ID, &n.AccountID, &n.Name, &n.Port, &status, &n.Reason, &n.CreatedAt, &n.Allow, &n.NamedForwarding); err != nil {
		return store.Node{}, err
	}
	n.Status = store.Status(status)
	n.CreatedAt = n.CreatedAt.UTC()
	if len(n.Allow) == 0 {
		n.Allow = nil
	}
	return n, nil
}

// masked returns allow with every prefix masked, never nil (the column is
// NOT NULL).
func masked(allow []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(allow))
	for i, p := range allow {
		out[i] = p.Masked()
	}
	return out
}

// CreateNode implements store.Store. The account's row is locked for the
// transaction, so creates for one account are serialised across every
// process sharing the database while the others proceed; the UNIQUE
// constraints on name and port decide races between accounts.
func (s *Store) CreateNode(ctx context.Context, n store.Node, limit int) (store.Node, error) {
	n.CreatedAt = msTime(nowOr(n.CreatedAt))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if limit > 0 {
			var id int64
			if err := tx.QueryRow(ctx, `SELECT id FROM accounts WHERE id = $1 FOR UPDATE`, n.AccountID).Scan(&id); err != nil {
				return err
			}
			var have int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE account_id = $1`, n.AccountID).Scan(&have); err != nil {
				return err
			}
			if have >= limit {
				return store.ErrNodeLimit
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO nodes (account_id, name, port, status, reason, created_at, allow_cidrs, named_forwarding)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			n.AccountID, n.Name, n.Port, string(n.Status), n.Reason, n.CreatedAt, masked(n.Allow), n.NamedForwarding).Scan(&n.ID)
	})
	if err == nil {
		return n, nil
	}
	if errors.Is(err, store.ErrNodeLimit) {
		return store.Node{}, err
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "23505" { // unique_violation
		switch pe.ConstraintName {
		case "nodes_name_key":
			return store.Node{}, store.ErrNameTaken
		case "nodes_port_key":
			return store.Node{}, store.ErrPortTaken
		}
	}
	return store.Node{}, s.wrap("create node", err)
}

// Node implements store.Store.
func (s *Store) Node(ctx context.Context, accountID, id int64) (store.Node, error) {
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = $1 AND account_id = $2`, id, accountID))
	if err != nil {
		return store.Node{}, s.wrap("node", err)
	}
	return n, nil
}

// Nodes implements store.Store.
func (s *Store) Nodes(ctx context.Context, accountID int64) ([]store.Node, error) {
	return s.nodes(ctx, `SELECT `+nodeCols+` FROM nodes WHERE account_id = $1 ORDER BY id`, accountID)
}

// AllNodes implements store.Store.
func (s *Store) AllNodes(ctx context.Context) ([]store.Node, error) {
	return s.nodes(ctx, `SELECT `+nodeCols+` FROM nodes ORDER BY id`)
}

func (s *Store) nodes(ctx context.Context, query string, args ...any) ([]store.Node, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, s.wrap("nodes", err)
	}
	var ns []store.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			rows.Close()
			return nil, s.wrap("nodes", err)
		}
		ns = append(ns, n)
	}
	return ns, s.wrap("nodes", rows.Err())
}

// SetNodeStatus implements store.Store.
func (s *Store) SetNodeStatus(ctx context.Context, id int64, st store.Status, reason string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE nodes SET status = $1, reason = $2 WHERE id = $3`, string(st), reason, id)
	if err != nil {
		return s.wrap("set node status", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteNode implements store.Store.
func (s *Store) DeleteNode(ctx context.Context, accountID, id int64) error {
	return s.deleteOwned(ctx, "nodes", accountID, id)
}

// updateOwned runs an UPDATE of an account's node; ErrNotFound when no
// row matched.
func (s *Store) updateOwned(ctx context.Context, op, set string, accountID, id int64, arg any) error {
	tag, err := s.pool.Exec(ctx, `UPDATE nodes SET `+set+` = $1 WHERE id = $2 AND account_id = $3`, arg, id, accountID)
	if err != nil {
		return s.wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// SetNodeAllow implements store.Store.
func (s *Store) SetNodeAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) error {
	return s.updateOwned(ctx, "set node allow-list", "allow_cidrs", accountID, id, masked(allow))
}

// SetNodeNamedForwarding implements store.Store.
func (s *Store) SetNodeNamedForwarding(ctx context.Context, accountID, id int64, enabled bool) error {
	return s.updateOwned(ctx, "set node named forwarding", "named_forwarding", accountID, id, enabled)
}

// SetNodeForwarderToken implements store.Store.
func (s *Store) SetNodeForwarderToken(ctx context.Context, accountID, id int64, name string, h store.Hash) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO node_forwarder_tokens (node_id, name, hash)
		SELECT id, $1, $2 FROM nodes WHERE id = $3 AND account_id = $4
		ON CONFLICT (node_id, name) DO UPDATE SET hash = excluded.hash`, name, h[:], id, accountID)
	if err != nil {
		return s.wrap("set forwarder token", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteNodeForwarderToken implements store.Store.
func (s *Store) DeleteNodeForwarderToken(ctx context.Context, accountID, id int64, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM node_forwarder_tokens
		WHERE name = $1 AND node_id IN (SELECT id FROM nodes WHERE id = $2 AND account_id = $3)`, name, id, accountID)
	if err != nil {
		return s.wrap("delete forwarder token", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// NodeForwarderTokens implements store.Store.
func (s *Store) NodeForwarderTokens(ctx context.Context, id int64) (map[string]store.Hash, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, hash FROM node_forwarder_tokens WHERE node_id = $1`, id)
	if err != nil {
		return nil, s.wrap("forwarder tokens", err)
	}
	out := map[string]store.Hash{}
	for rows.Next() {
		var name string
		var h []byte
		if err := rows.Scan(&name, &h); err != nil {
			rows.Close()
			return nil, s.wrap("forwarder tokens", err)
		}
		var hh store.Hash
		copy(hh[:], h)
		out[name] = hh
	}
	return out, s.wrap("forwarder tokens", rows.Err())
}

// TrimSessions implements store.Store.
func (s *Store) TrimSessions(ctx context.Context, accountID int64, keep int, now time.Time) (int, error) {
	keep = max(keep, 0)
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE account_id = $1 AND expires_at > $2 AND hash NOT IN (
		SELECT hash FROM sessions WHERE account_id = $1 AND expires_at > $2
		ORDER BY created_at DESC, seq DESC LIMIT $3)`, accountID, msTime(now), keep)
	if err != nil {
		return 0, s.wrap("trim sessions", err)
	}
	return int(tag.RowsAffected()), nil
}
