// Package pgstore is a store.Store on PostgreSQL, through a pgx connection
// pool, for a Hub whose accounts, sessions, tokens and nodes live in a
// database that several processes may share and operators already back up.
//
// It has the semantics of store/sqlstore, which the conformance suite in
// store/storetest checks for both. CreateNode's checks are atomic across
// processes: the account's row is locked (SELECT … FOR UPDATE) while its
// nodes are counted and the new one inserted, and names and ports are
// UNIQUE constraints.
//
// The schema is versioned by the numbered SQL files under
// migrations/postgres, recorded in a schema_migrations table and applied by
// Open (or Migrate) under a PostgreSQL advisory lock, so that instances
// starting together apply each migration once.
//
// Errors that mean the server cannot be reached (refused or broken
// connections, a server shutting down or starting) wrap
// store.ErrUnavailable; the pool reconnects by itself when the server is
// back.
package pgstore
