package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ockamhub/ockamhub/store"
)

// clusterChannel is the LISTEN/NOTIFY channel on which placement changes
// are announced, so that instances act on them before their next tick.
const clusterChannel = "ockamhub_cluster"

// notify announces a placement change; a lost notification only delays
// the change until the instances' next tick.
func (s *Store) notify(ctx context.Context) {
	s.pool.Exec(ctx, `SELECT pg_notify($1, '')`, clusterChannel)
}

// WatchCluster calls changed after each announced placement change (and
// once when it starts listening) until ctx ends, reconnecting when the
// connection breaks.
func (s *Store) WatchCluster(ctx context.Context, changed func()) {
	for ctx.Err() == nil {
		s.watch(ctx, changed)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) watch(ctx context.Context, changed func()) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	// The connection keeps its LISTEN: it must not go back to the pool.
	defer func() {
		conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+clusterChannel); err != nil {
		return
	}
	changed()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return
		}
		changed()
	}
}

// Instance is a serve instance of a cluster, as recorded in the database.
type Instance struct {
	Name     string
	Addr     string // the IP address other instances relay its nodes' connections to
	Live     bool   // its lease has not lapsed
	Draining bool   // it is handing its nodes over and takes no new ones
	Nodes    int    // nodes placed on it
}

// Placement says which instance runs a node.
type Placement struct {
	NodeID      int64
	AccountID   int64
	Port        int
	Instance    string // "" when the node is not placed yet
	Epoch       int64  // grows with every change of owner
	SettingsSeq int64  // grows with every change of the node's settings
	Stats       store.NodeStats
}

// RenewLease records instance name at addr with a lease of d from the
// database's clock, creating it if needed, and returns how many other
// instances are live and not draining.
func (s *Store) RenewLease(ctx context.Context, name, addr string, d time.Duration, draining bool) (others int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO instances (name, addr, lease_until, draining) VALUES ($1, $2, now() + $3 * interval '1 millisecond', $4)
			ON CONFLICT (name) DO UPDATE SET addr = EXCLUDED.addr, lease_until = EXCLUDED.lease_until, draining = EXCLUDED.draining`,
			name, addr, d.Milliseconds(), draining); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM instances WHERE name <> $1 AND lease_until > now() AND NOT draining`, name).Scan(&others)
	})
	return others, s.wrap("renew lease", err)
}

// ExpireLease ends instance name's lease at once, so that live instances
// claim whatever nodes it still has; with forget, it deletes the instance
// when no node is placed on it.
func (s *Store) ExpireLease(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `UPDATE instances SET lease_until = now() - interval '1 hour', draining = true WHERE name = $1`, name)
	if err == nil {
		_, err = s.pool.Exec(ctx, `DELETE FROM instances WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM node_placement WHERE instance = $1)`, name)
	}
	return s.wrap("expire lease", err)
}

// Instances lists the recorded instances by name.
func (s *Store) Instances(ctx context.Context) ([]Instance, error) {
	rows, err := s.pool.Query(ctx, `SELECT i.name, i.addr, i.lease_until > now(), i.draining,
		(SELECT count(*) FROM node_placement p WHERE p.instance = i.name) FROM instances i ORDER BY i.name`)
	if err != nil {
		return nil, s.wrap("instances", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Instance, error) {
		var in Instance
		err := r.Scan(&in.Name, &in.Addr, &in.Live, &in.Draining, &in.Nodes)
		return in, err
	})
	return out, s.wrap("instances", err)
}

// Placements lists every node with its placement (Instance "" when it
// has none yet), by node ID.
func (s *Store) Placements(ctx context.Context) ([]Placement, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.id, n.account_id, n.port, coalesce(p.instance, ''), coalesce(p.epoch, 0), coalesce(p.settings_seq, 0),
		coalesce(p.conns, 0), coalesce(p.accepted, 0), coalesce(p.forwarders, 0), coalesce(p.fwd_total, 0), coalesce(p.msgs_in, 0),
		coalesce(p.msgs_out, 0), coalesce(p.bytes_in, 0), coalesce(p.bytes_out, 0), coalesce(p.dropped, 0)
		FROM nodes n LEFT JOIN node_placement p ON p.node_id = n.id ORDER BY n.id`)
	if err != nil {
		return nil, s.wrap("placements", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Placement, error) {
		var p Placement
		var fwd, acc, fwdt, mi, mo, bi, bo, dr int64
		err := r.Scan(&p.NodeID, &p.AccountID, &p.Port, &p.Instance, &p.Epoch, &p.SettingsSeq,
			&p.Stats.Conns, &acc, &fwd, &fwdt, &mi, &mo, &bi, &bo, &dr)
		p.Stats.Accepted, p.Stats.Forwarders, p.Stats.ForwardersRegistered = uint64(acc), int(fwd), uint64(fwdt)
		p.Stats.MessagesIn, p.Stats.MessagesOut, p.Stats.BytesIn, p.Stats.BytesOut, p.Stats.Dropped = uint64(mi), uint64(mo), uint64(bi), uint64(bo), uint64(dr)
		return p, err
	})
	return out, s.wrap("placements", err)
}

// leastLoaded is the live, not draining instance other than $2 with the
// fewest nodes ($1 preferred on a tie).
const leastLoaded = `SELECT i.name FROM instances i LEFT JOIN node_placement p ON p.instance = i.name
	WHERE i.lease_until > now() AND NOT i.draining AND i.name <> $2
	GROUP BY i.name ORDER BY count(p.node_id), i.name = $1 DESC, i.name LIMIT 1`

// PlaceNode places node id on the live instance with the fewest nodes
// (self on a tie) unless it is placed already, and returns where it runs
// ("" if no instance is live).
func (s *Store) PlaceNode(ctx context.Context, id int64, self string) (string, error) {
	var where string
	err := s.pool.QueryRow(ctx, `WITH t AS (`+leastLoaded+`), ins AS (
		INSERT INTO node_placement (node_id, instance) SELECT $3, name FROM t ON CONFLICT (node_id) DO NOTHING RETURNING instance)
		SELECT coalesce((SELECT instance FROM ins), (SELECT instance FROM node_placement WHERE node_id = $3), '')`, self, "", id).Scan(&where)
	if err == nil && where != self {
		s.notify(ctx)
	}
	return where, s.wrap("place node", err)
}

// ClaimOrphans moves to self its share (1/share, rounded up) of the nodes
// that are not placed or whose instance's lease lapsed more than margin
// ago, raising their epoch, and returns how many orphans there were before
// and the IDs it claimed.
func (s *Store) ClaimOrphans(ctx context.Context, self string, margin time.Duration, share int) (orphans int, claimed []int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM nodes n LEFT JOIN node_placement p ON p.node_id = n.id LEFT JOIN instances i ON i.name = p.instance
			WHERE p.node_id IS NULL OR i.name IS NULL OR i.lease_until < now() - $1 * interval '1 millisecond'`, margin.Milliseconds()).Scan(&orphans); err != nil {
			return err
		}
		if orphans == 0 {
			return nil
		}
		limit := (orphans + max(share, 1) - 1) / max(share, 1)
		if _, err := tx.Exec(ctx, `INSERT INTO node_placement (node_id, instance)
			SELECT n.id, $1 FROM nodes n WHERE NOT EXISTS (SELECT 1 FROM node_placement p WHERE p.node_id = n.id) ORDER BY n.id LIMIT $2
			ON CONFLICT (node_id) DO NOTHING`, self, limit); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH o AS (
			SELECT p.node_id FROM node_placement p LEFT JOIN instances i ON i.name = p.instance
			WHERE p.instance <> $1 AND (i.name IS NULL OR i.lease_until < now() - $2 * interval '1 millisecond')
			ORDER BY p.node_id LIMIT $3 FOR UPDATE OF p SKIP LOCKED)
			UPDATE node_placement p SET instance = $1, epoch = p.epoch + 1 FROM o WHERE p.node_id = o.node_id RETURNING p.node_id`,
			self, margin.Milliseconds(), limit)
		if err != nil {
			return err
		}
		claimed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err == nil && len(claimed) > 0 {
		s.notify(ctx)
	}
	return orphans, claimed, s.wrap("claim nodes", err)
}

// TakeBack raises the epoch of every node placed on self: a restarted
// instance fences whatever its previous run may still believe.
func (s *Store) TakeBack(ctx context.Context, self string) error {
	_, err := s.pool.Exec(ctx, `UPDATE node_placement SET epoch = epoch + 1 WHERE instance = $1`, self)
	return s.wrap("take back nodes", err)
}

// HandOver moves node id from instance from to the live, not draining
// instance with the fewest nodes, raising its epoch, and returns the new
// owner ("" when no other instance can take it: it stays on from).
func (s *Store) HandOver(ctx context.Context, id int64, from string) (string, error) {
	var to string
	err := s.pool.QueryRow(ctx, `WITH t AS (`+leastLoaded+`), u AS (
		UPDATE node_placement SET instance = (SELECT name FROM t), epoch = epoch + 1
		WHERE node_id = $3 AND instance = $2 AND EXISTS (SELECT 1 FROM t) RETURNING instance)
		SELECT coalesce((SELECT instance FROM u), '')`, "", from, id).Scan(&to)
	if err == nil && to != "" {
		s.notify(ctx)
	}
	return to, s.wrap("hand over node", err)
}

// BumpSettings records that node id's settings changed, so that the
// instance running it applies them.
func (s *Store) BumpSettings(ctx context.Context, id int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE node_placement SET settings_seq = settings_seq + 1 WHERE node_id = $1`, id)
	if err == nil {
		s.notify(ctx)
	}
	return s.wrap("bump settings", err)
}

// PublishStats records the counters of the nodes self runs (only those
// still placed on self).
func (s *Store) PublishStats(ctx context.Context, self string, stats map[int64]store.NodeStats) error {
	if len(stats) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for id, st := range stats {
		b.Queue(`UPDATE node_placement SET conns = $3, accepted = $4, forwarders = $5, fwd_total = $6, msgs_in = $7, msgs_out = $8,
			bytes_in = $9, bytes_out = $10, dropped = $11 WHERE node_id = $1 AND instance = $2`,
			id, self, st.Conns, int64(st.Accepted), st.Forwarders, int64(st.ForwardersRegistered), int64(st.MessagesIn),
			int64(st.MessagesOut), int64(st.BytesIn), int64(st.BytesOut), int64(st.Dropped))
	}
	return s.wrap("publish stats", s.pool.SendBatch(ctx, b).Close())
}
