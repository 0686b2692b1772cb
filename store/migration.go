package store

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Schema migrations are embedded, numbered SQL files per store
// (store/sqlstore/migrations/sqlite, store/pgstore/migrations/postgres),
// recorded in a schema_migrations table and applied forward only, each in
// its own transaction, at start-up or by "ockamhub db migrate", under a
// lock: a PostgreSQL advisory lock, SQLite's write lock. This is the
// pattern sqlstore shipped with, kept rather than replaced by goose:
// databases in use already record their versions in schema_migrations
// (goose would need its own table and a bridge), the whole mechanism is
// about a hundred lines with no dependency, and we want nothing goose adds
// (down migrations, Go migrations): a bad release is rolled back by
// restoring a backup, not by running schema changes backwards.

// Migration is one versioned schema change of a store's database, as
// listed by the stores' Status and Migrate functions.
type Migration struct {
	Version   int       // the number its file name starts with, e.g. 1 for 0001_init.sql
	Name      string    // the file name without ".sql", e.g. "0001_init"
	AppliedAt time.Time // when it was applied; zero while pending
}

// Applied reports whether m has been applied.
func (m Migration) Applied() bool { return !m.AppliedAt.IsZero() }

// MigrationFile is an embedded migration: a file named
// NNNN_description.sql in a store's migrations directory.
type MigrationFile struct {
	Version int
	Name    string // file name without ".sql"
	SQL     string
}

// MigrationFiles reads the *.sql files of dir in fsys, in version order.
// Every name must start with a distinct decimal version and an underscore.
func MigrationFiles(fsys fs.FS, dir string) ([]MigrationFile, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var out []MigrationFile
	seen := map[int]string{}
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s: the name must be NNNN_description.sql", base)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s have the same version", other, base)
		}
		seen[v] = base
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, MigrationFile{Version: v, Name: base, SQL: string(text)})
	}
	slices.SortFunc(out, func(a, b MigrationFile) int { return a.Version - b.Version })
	return out, nil
}
