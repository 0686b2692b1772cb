// Package examples holds runnable Go ports of the 2021 Rust Ockam
// get_started examples and guide steps, one program per directory:
//
//	01-node                                   start a node and stop it
//	02-worker                                 an Echoer worker at "echoer"
//	03-routing                                route h1 => echoer through a Hop worker
//	04-routing-many-hops                      route h1 => h2 => h3 => echoer
//	05-secure-channel                         a secure channel between workers of one node
//	06-secure-channel-many-hops               a secure channel through hop workers
//	07-routing-over-transport-responder       echoer behind a TCP listener
//	07-routing-over-transport-initiator       route 1#RESPONDER => echoer
//	08-routing-over-transport-many-hops-*     route 1#MIDDLE => 1#RESPONDER => echoer
//	09-secure-channel-over-many-transport-hops-*  a secure channel across two TCP hops
//	10-routing-to-hub                         route 1#HUB => echo_service
//	11-forwarding-through-hub-responder       echoer reachable through a hub forwarder
//	11-forwarding-through-hub-initiator       route 1#HUB => 0#FORWARDER
//	12-secure-channel-hub-forwarding-*        a secure channel through a hub's forwarder
//	step-2-server, step-2-client              the March 2021 guide, step 2
//	step-3-hub-echo                           the March 2021 guide, step 3
//	step-4-receiver, step-4-sender            the March 2021 guide, step 4
//
// Package getstarted holds the workers the examples share (Echoer and Hop),
// as the Rust examples share them through their get_started crate.
//
// Run an example from the module root, for instance:
//
//	go run ./examples/02-worker
//
// The programs that need a hub take its address with -hub; run one with
//
//	go run ./cmd/ockamhub node --listen 127.0.0.1:4000
//
// Unlike the 2021 Rust examples, the secure channel examples check the
// listener's identity: 05 and 06 pin the listener they start, and the 09 and
// 12 initiators take the responder's "identity:" line with -peer (or,
// explicitly, -insecure-accept-any-peer, which is what the Rust programs
// did). See docs/secure-channels.md.
//
// The test in this directory builds every example and runs them against
// each other, and against an in-process hub, on 127.0.0.1.
package examples
