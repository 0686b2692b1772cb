// Package portal implements TCP portals, compatible with the 2021 Rust
// Ockam TCP inlets and outlets (portals.md; docs/protocol.md, "Portals"):
// an [Outlet] is a worker at a well-known address (e.g. "outlet") that, for
// each portal an inlet opens, connects to a target HOST:PORT and relays;
// an [Inlet] turns each TCP connection it accepts into a portal along a
// route, e.g. [1#HUB, 0#FORWARDER] through a hub, or [0#CHANNEL, 0#outlet]
// inside a secure channel.
//
// Two 2021 generations are spoken. G3 (ockam_transport_tcp 0.37.0,
// December 2021) is the default: enum PortalMessage {Ping, Pong,
// Disconnect, Payload(Vec<u8>)}, a BARE union. G2 (0.22.0–0.36.0) is
// chosen per outlet (OutletConfig.Generation): a one-byte handshake 00 each
// way, data as PortalMessage{binary}, and no close signal. An inlet
// recognises the outlet's generation from its answer: 00 is G2, 01 G3.
//
// Protocol flow (G3, portals.md §5.1), per TCP connection C accepted by the
// inlet; I and O are fresh random 32-hex addresses, one per connection:
//
//	inlet                                          outlet ("outlet")
//	accept C; C is not read yet (but see Early data)
//	Ping 00 [‖ "oh" 01 window early] from I ──►   check it is a Ping, connect to the target first,
//	                                               write what it takes of the early bytes
//	                                               (unreachable: Pong then Disconnect, from a fresh address)
//	                                    ◄───────   Pong 01 [‖ "oh" 01 window [features took]] from O to the Ping's return route
//	route to O := the Pong's return route          route to I := the Ping's return route
//	read C → Payload 03 ‖ data / Data 05  ◄──────► target → Payload / Data
//	EOF on C → Disconnect 02 [‖ total]  ───────►   flush, close the target, send nothing more
//	                                               (an ockamhub peer answers with its own total)
//
// Routes are taken from the peer's first message only; a message whose
// onward route continues past the portal's address is dropped. Every
// message travels in one frame: chunks are at most 60 KiB, less when the
// route is long, so that the frame with routes and a secure channel's
// overhead stays under 65535 bytes.
//
// # Lossless or closed
//
// The 2021 protocol has no sequence numbers and no flow control: a message
// lost on the way (a hub whose send queue stayed full) silently corrupts the
// stream. Between two ockamhub peers the portal is lossless or closed:
//
//   - Flow control. An ockamhub outlet appends an offer to its Pong
//     (01 ‖ "oh" ‖ uvarint(version 1) ‖ uvarint(window)); a 2021 Rust inlet
//     reads a Pong and ignores the trailing bytes. An ockamhub inlet accepts
//     by sending Credit (04 ‖ uvarint(limit)) at once. From then on each side
//     sends stream bytes only below the limit the other granted (the bytes it
//     has written to its socket plus Options.Window), so a slow target holds
//     at most one window per portal in flight: nothing accumulates in a hub's
//     queues, and the receiver's TCP reader never blocks on a portal.
//   - Detection. Data messages (05 ‖ uvarint(offset) ‖ uvarint(n) ‖ bytes)
//     carry their stream offset, and Disconnect its total (02 ‖
//     uvarint(total)); a gap, an excess or a short total closes both ends,
//     the local one with a TCP reset, and is logged, with a Disconnect
//     flagged as an abort (02 ‖ uvarint(total) ‖ 01) so that the peer does
//     the same. The answering Disconnect also lets bytes still in flight
//     arrive before either side closes.
//
// With a 2021 Rust peer, which knows none of this, the portal speaks exact
// 2021 G3 (or G2): no extension tag is ever sent to it.
//
// # Early data
//
// A new portal's first bytes would wait for the Pong, one more crossing of
// the route before the target sees the client's request. An outlet that
// speaks the extension announces FeatureEarlyData in its offer; on a route
// whose outlet did (the inlet remembers, per route), the inlet sends its
// Ping in the early-data form: its window (so no first Credit follows)
// and what the client has already sent, at most MaxEarly bytes, taken
// with one read that never waits (a client that waits for the server to
// speak first, as SSH does, is never delayed). The outlet writes what its
// target's socket takes of them at once, right after connecting, and says
// how many in its Pong (Extension.Early). The inlet keeps the bytes until
// then and sends what was not taken first, as ordinary data in the form
// the outlet reads: Data from that offset, Payload to a 2021 G3 outlet, G2
// data to a G2 one. So nothing is lost or sent twice whoever answers.
//
// The first Ping on a route is always plain: a G2 outlet (2021 Rust, or
// ockamhub before early data) refuses the early form, whereas a 2021 G3
// outlet reads it as a plain Ping (serde_bare ignores trailing bytes) and
// an ockamhub one without early data ignores it too. A Pong without the
// feature, or a failed handshake that carried early data, makes the
// inlet's next Ping on that route plain again; and at most 16 early Pings
// per route wait for their answer at a time, which bounds the portals that
// fail (after the handshake timeout) when a G2 outlet takes the route's
// outlet's place. See docs/protocol.md §6.4.
//
// # Secure channels
//
// A 2021 Rust channel encrypts at most 65535 messages per direction and
// never rekeys. A portal inside a channel counts its messages in the
// channel's [Budget] (shared by all portals in that channel) and, when the
// budget is spent, sends a Disconnect with the last message it kept back
// and closes, so the channel never refuses a message nor wraps its nonce.
// With 60 KiB chunks a channel carries about 3.7 GiB each way; `ockamhub
// portal inlet --secure` opens a new channel for new connections once the
// current one has used half of its budget.
//
// A portal's address is an inline worker: the peer's messages are handled
// in the goroutine that delivers them (the TCP transport's reader, a
// secure channel's worker), and their bytes written to the local socket
// from there when the socket takes them at once; the rest waits in the
// portal's queue for its writer goroutine, which also sends the Credits
// (a delivering goroutine never waits on anything the portal sends). A
// 2021 peer, which has no flow control, can get more than the queue holds
// ahead of a slow socket: its messages then go through a mailbox, whose
// goroutine waits instead, as before. A plain portal is also a
// node.SpliceSink: on Linux the TCP transport moves a large Payload's or
// Data's bytes from the hub connection's socket into the local socket
// with splice(2), never reading them into memory, when the portal would
// have written them at once (Stats.Spliced; tcp.Config.NoSplice).
//
// Portals keep received payloads until written (write queues): do not run
// them on a node whose TCP transport reuses message bodies (an
// optimisation meant for hubs, whose relays keep nothing).
//
// Portals never send the heartbeat (an empty-route message): every message
// has the peer's route.
package portal
