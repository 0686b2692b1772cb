// Package sqlstore implements store.Store on database/sql with the pure-Go
// SQLite driver modernc.org/sqlite (driver name "sqlite").
//
// The database is opened in WAL mode with a 5 s busy timeout and foreign
// keys on; write transactions begin IMMEDIATE, so two of them never
// deadlock upgrading a read lock. The schema is created and upgraded by the
// SQL files embedded from migrations/sqlite, applied in order at Open and
// recorded in the schema_migrations table.
package sqlstore
