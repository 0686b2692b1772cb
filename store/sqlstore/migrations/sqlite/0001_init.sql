-- Accounts, sign-in sessions, personal API tokens and hub nodes.
-- Times are Unix milliseconds (UTC); secrets are stored only as SHA-256.

CREATE TABLE accounts (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	provider    TEXT    NOT NULL,
	provider_id TEXT    NOT NULL,
	login       TEXT    NOT NULL,
	created_at  INTEGER NOT NULL,
	UNIQUE (provider, provider_id)
);

CREATE TABLE sessions (
	hash       BLOB    PRIMARY KEY,
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE tokens (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	hash       BLOB    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);
CREATE INDEX tokens_account_id ON tokens (account_id);

CREATE TABLE nodes (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT    NOT NULL UNIQUE,
	port       INTEGER NOT NULL UNIQUE,
	status     TEXT    NOT NULL,
	reason     TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
CREATE INDEX nodes_account_id ON nodes (account_id);
