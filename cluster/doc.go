// Package cluster runs one `ockamhub serve` instance as part of a cluster
// of instances sharing one PostgreSQL database (store/pgstore), with no
// consensus of its own: the database is the single source of truth.
//
// Leases. Each instance renews a lease (Config.Lease) every lease/8, on
// the database's clock. An instance whose last successful renewal was
// sent more than 0.6 × lease ago stops all its nodes (a watchdog separate
// from the loop, which may be stuck on the database), unless it was the
// only live instance then: with no one to take over, it keeps serving
// through a database outage.
//
// Placement and failover. A new node is placed on the live instance with
// the fewest nodes. Nodes of an instance whose lease lapsed more than
// lease/4 ago (and nodes never placed) are claimed by the live instances,
// each its share, with an atomic UPDATE that raises the node's epoch.
// Since a claim needs lease × 1.25 after the owner's last renewal was
// sent and the owner stops at 0.6 × lease, no node runs on two instances
// at once. Changes are announced with LISTEN/NOTIFY.
//
// Hand-over. Leave (on SIGTERM) stops each node and then places it on the
// least loaded other live instance.
//
// Front door. Every instance binds every node's port on its listen
// address. A connection for a node running here is handed to it; one for
// a node running elsewhere is relayed at TCP level to the owner's cluster
// address and the same port, after a PROXY protocol v2 header carrying the
// client's address. A PROXY header is accepted only from a live instance's
// address; from anywhere else (or a second one after ours) it closes the
// connection. A relayed connection for a node not running here is refused,
// never relayed again, so ownership changes cannot make loops.
package cluster
