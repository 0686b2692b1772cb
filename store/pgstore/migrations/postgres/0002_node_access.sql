-- Issue 10: per-node access control and named forwarding, set by the owner
-- (the PostgreSQL twin of store/sqlstore's 0002_node_access.sql).
-- allow_cidrs: the node's allow-list, masked prefixes in order ('{}' = open).
-- named_forwarding: whether the node runs static_forwarding_service.
-- node_forwarder_tokens: the SHA-256 of the token each named forwarder needs.
-- sessions.seq orders sessions created in the same millisecond, as
-- SQLite's rowid does.

ALTER TABLE nodes ADD COLUMN allow_cidrs CIDR[] NOT NULL DEFAULT '{}';
ALTER TABLE nodes ADD COLUMN named_forwarding BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE node_forwarder_tokens (
	node_id BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
	name    TEXT   NOT NULL,
	hash    BYTEA  NOT NULL,
	PRIMARY KEY (node_id, name)
);

ALTER TABLE sessions ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
CREATE INDEX sessions_account_id ON sessions (account_id, created_at);
