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
//	Delete   Shutdown the hub (which closes its listener), then forget it
//	Shutdown every hub, in parallel; the records keep their state, so the
//	         next Restore brings the same nodes back
package provision
