package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
	"github.com/ockamhub/ockamhub/store/sqlstore"
)

// dbFlagUsage documents --db for serve and db.
const dbFlagUsage = "database: postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://…) for PostgreSQL, sqlite:PATH for a SQLite file; default SQLite in --data"

// database is where serve and db keep their data, from --db and --data.
type database struct {
	postgres bool
	dsn      string // the PostgreSQL URL, or the SQLite file
}

// parseDB interprets --db (empty: SQLite under dataDir).
func parseDB(db, dataDir string) (database, error) {
	switch {
	case db == "":
		return database{dsn: filepath.Join(dataDir, "ockamhub.db")}, nil
	case pgstore.IsURL(db):
		return database{postgres: true, dsn: db}, nil
	case strings.HasPrefix(db, "sqlite:") && len(db) > len("sqlite:"):
		return database{dsn: strings.TrimPrefix(db, "sqlite:")}, nil
	}
	shown := db
	if strings.Contains(db, "://") {
		shown = strings.SplitN(db, "://", 2)[0] + "://…"
	}
	return database{}, usagef("--db %q: want postgres://…, postgresql://… or sqlite:PATH", shown)
}

// String names the database for logs and messages, without a password.
func (d database) String() string {
	if d.postgres {
		return pgstore.Redact(d.dsn)
	}
	return "sqlite:" + d.dsn
}

// dbStore is a store that can be checked and closed.
type dbStore interface {
	store.Store
	Ping(ctx context.Context) error
	Close() error
}

// open opens the store, applying pending migrations. For the default
// SQLite file it creates --data first.
func (d database) open(ctx context.Context, dataDir string, defaulted bool) (dbStore, error) {
	if d.postgres {
		return pgstore.Open(ctx, d.dsn)
	}
	if defaulted {
		if _, err := sqlstore.SecureDir(dataDir); err != nil {
			return nil, err
		}
	}
	return sqlstore.Open(ctx, d.dsn)
}

// openRetryPolicy paces openRetry's attempts.
var openRetryPolicy = backoff.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Factor: 2}

// openRetry is open, except that an unreachable PostgreSQL server
// (store.ErrUnavailable) is tried again with backoff until it answers or
// ctx ends (then it returns ctx's error). It logs the first attempts, then
// at most once every 10 s, with the URL's password hidden.
func (d database) openRetry(ctx context.Context, log *slog.Logger, dataDir string, defaulted bool) (dbStore, error) {
	logs := rate.Sometimes{First: 3, Interval: 10 * time.Second}
	for attempt := 1; ; attempt++ {
		st, err := d.open(ctx, dataDir, defaulted)
		if err == nil || !d.postgres {
			return st, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return nil, err
		}
		delay := openRetryPolicy.Delay(attempt - 1)
		logs.Do(func() {
			log.Warn("database unreachable; retrying", "db", d.String(), "attempt", attempt, "retry_in", delay.Round(time.Millisecond), "err", err)
		})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

func runDB(ctx context.Context, e *env, args []string) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := e.flagSet("db", "migrate|status [flags]", `Manages the service's database schema without starting the service.

  ockamhub db migrate   applies the migrations the database lacks and prints
                        "applied NAME" for each, then "DB: schema at version N"
  ockamhub db status    prints each migration known to this program with the
                        time it was applied, or "pending" (and any a newer
                        build applied, marked "(not in this program)"), then
                        "DB: schema at version N, K pending"; changes nothing

serve applies pending migrations itself at start-up. Migrations are applied
under a lock (a PostgreSQL advisory lock; SQLite's write lock), so several
processes may start or migrate together.`)
	db := fs.String("db", "", dbFlagUsage)
	dataDir := fs.String("data", "./ockamhub-data", "directory for the SQLite database when --db is not given")
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if sub == "" && len(pos) > 0 {
		sub, pos = pos[0], pos[1:]
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	setupLog()
	d, err := parseDB(*db, *dataDir)
	if err != nil {
		return err
	}
	switch sub {
	case "migrate":
		var applied []store.Migration
		if d.postgres {
			applied, err = pgstore.Migrate(ctx, d.dsn)
		} else {
			if *db == "" {
				if _, err := sqlstore.SecureDir(*dataDir); err != nil {
					return err
				}
			}
			applied, err = sqlstore.Migrate(ctx, d.dsn)
		}
		for _, m := range applied {
			fmt.Fprintf(e.stdout, "applied %s\n", m.Name)
		}
		if err != nil {
			return err
		}
		ms, err := status(ctx, d)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: schema at version %d\n", d, version(ms))
		return nil
	case "status":
		ms, err := status(ctx, d)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
		pending := 0
		for _, m := range ms {
			at := "pending"
			if m.Applied() {
				at = m.AppliedAt.UTC().Format(time.RFC3339)
			} else {
				pending++
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, at)
		}
		tw.Flush()
		fmt.Fprintf(e.stdout, "%s: schema at version %d, %d pending\n", d, version(ms), pending)
		return nil
	case "":
		return usagef("want a command: migrate or status")
	}
	return usagef("unknown subcommand %q: want migrate or status", sub)
}

func status(ctx context.Context, d database) ([]store.Migration, error) {
	if d.postgres {
		return pgstore.Status(ctx, d.dsn)
	}
	return sqlstore.Status(ctx, d.dsn)
}

// version is the highest applied migration's version (0 for none).
func version(ms []store.Migration) int {
	v := 0
	for _, m := range ms {
		if m.Applied() && m.Version > v {
			v = m.Version
		}
	}
	return v
}
