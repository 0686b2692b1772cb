-- Issue 10: per-node access control and named forwarding, set by the owner.
-- allow_cidrs: the node's allow-list, prefixes separated by spaces ("" = open).
-- named_forwarding: 1 when the node runs static_forwarding_service.
-- node_forwarder_tokens: the SHA-256 of the token each named forwarder needs.

ALTER TABLE nodes ADD COLUMN allow_cidrs TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN named_forwarding INTEGER NOT NULL DEFAULT 0;

CREATE TABLE node_forwarder_tokens (
	node_id INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
	name    TEXT    NOT NULL,
	hash    BLOB    NOT NULL,
	PRIMARY KEY (node_id, name)
);

CREATE INDEX sessions_account_id ON sessions (account_id, created_at);
