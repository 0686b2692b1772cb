// Package provision starts, stops and watches users' hub nodes.
//
// Provisioner is what the web control plane needs; Local implements it by
// running each node as a hub.Hub inside this process, on its own TCP port
// from a configured range. Every node is its own hub (its own node, TCP
// transport, echo_service and forwarding_service), so a worker or forwarder
// on one user's node is unreachable from another's.
//
// Lifecycle of a node:
//
//	Create   pick the lowest port in the range that no node has and the OS
//	         lets us bind; record the node (starting); Serve; record running
//	Restore  at startup, every recorded node on its recorded port: running,
//	         or failed with the reason (e.g. the port is in use)
//	Retry    a failed node is tried again on its port with backoff
//	         (Config.RetryMin doubling to RetryMax) until it starts or is deleted
//	Delete   forget the node and take it out of the running set (at once,
//	         together), then Shutdown its hub; its port is free on return
//	Shutdown every hub, in parallel; the records keep their state, so the
//	         next Restore brings the same nodes back
//
// Each of these holds one lock while it changes the store and the set of
// running nodes, so that outside of them the running nodes are exactly the
// stored nodes that are not failed: no node runs unrecorded (an "orphan"
// nobody can see or delete). Each node's owner sets its allow-list and
// named forwarding (SetAllow, SetNamedForwarding, SetForwarderToken); they
// are stored and applied to the running hub at once.
package provision
