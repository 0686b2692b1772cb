-- Accounts, sign-in sessions, personal API tokens and hub nodes: the
-- PostgreSQL twin of migrations/sqlite/0001_init.sql in store/sqlstore.
-- Secrets are stored only as SHA-256. Constraint names are fixed because
-- pgstore maps their violations to store errors.

CREATE TABLE accounts (
	id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	provider    TEXT        NOT NULL,
	provider_id TEXT        NOT NULL,
	login       TEXT        NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	CONSTRAINT accounts_provider_key UNIQUE (provider, provider_id)
);

CREATE TABLE sessions (
	hash       BYTEA       PRIMARY KEY,
	account_id BIGINT      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE tokens (
	id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id BIGINT      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT        NOT NULL,
	hash       BYTEA       NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	CONSTRAINT tokens_hash_key UNIQUE (hash)
);
CREATE INDEX tokens_account_id ON tokens (account_id);

CREATE TABLE nodes (
	id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id BIGINT      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT        NOT NULL,
	port       INTEGER     NOT NULL,
	status     TEXT        NOT NULL,
	reason     TEXT        NOT NULL DEFAULT '',
	created_at TIMESTAMPTZ NOT NULL,
	CONSTRAINT nodes_name_key UNIQUE (name),
	CONSTRAINT nodes_port_key UNIQUE (port)
);
CREATE INDEX nodes_account_id ON nodes (account_id);
