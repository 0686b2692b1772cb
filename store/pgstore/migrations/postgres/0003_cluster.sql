-- Issue 12: many serve instances on one database.
-- instances: each `serve --instance NAME` and the address other instances
-- relay its nodes' connections to; lease_until is renewed on the
-- database's clock (now()), so instances' clocks need not agree.
-- node_placement: which instance runs each node; epoch grows with every
-- change of owner (claim, hand-over) and fences stale owners; the counters
-- are published by the owner every few seconds for the other instances'
-- dashboards; settings_seq grows when the node's settings change, so the
-- owner re-applies them.

CREATE TABLE instances (
	name        TEXT        PRIMARY KEY,
	addr        TEXT        NOT NULL,
	lease_until TIMESTAMPTZ NOT NULL,
	draining    BOOLEAN     NOT NULL DEFAULT false,
	started_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE node_placement (
	node_id      BIGINT      PRIMARY KEY REFERENCES nodes (id) ON DELETE CASCADE,
	instance     TEXT        NOT NULL,
	epoch        BIGINT      NOT NULL DEFAULT 1,
	settings_seq BIGINT      NOT NULL DEFAULT 0,
	conns        BIGINT      NOT NULL DEFAULT 0,
	accepted     BIGINT      NOT NULL DEFAULT 0,
	forwarders   BIGINT      NOT NULL DEFAULT 0,
	fwd_total    BIGINT      NOT NULL DEFAULT 0,
	msgs_in      BIGINT      NOT NULL DEFAULT 0,
	msgs_out     BIGINT      NOT NULL DEFAULT 0,
	bytes_in     BIGINT      NOT NULL DEFAULT 0,
	bytes_out    BIGINT      NOT NULL DEFAULT 0,
	dropped      BIGINT      NOT NULL DEFAULT 0
);
CREATE INDEX node_placement_instance ON node_placement (instance);
