// Package securechannel implements the Ockam secure channel of April–June
// 2021 (Rust ockam_channel) on top of package noise: an end-to-end encrypted
// channel between two workers on any two nodes, carried over any route,
// including through a hub that only relays the ciphertext. It interoperates
// with the Rust framing of protocol.md §10 (the 2021 Elixir channel used
// another framing and was not compatible, §10.7).
//
// A Listener at a well-known address (Listen) starts a responder for each
// initiator; Create runs the initiator and returns a Channel. Each channel
// end is one worker with two random 32-hex addresses: address_local, the
// plaintext side that local workers send to (Channel.Address), and
// address_remote, the ciphertext side that the peer sends to.
//
//	id, _ := securechannel.ParseIdentity(listenerIdentity) // its "identity:" line
//	ch, err := securechannel.Create(ctx, n, route /* …, secure_channel */, securechannel.Config{ExpectedPeerStatic: id.Key()})
//	n.Send(ctx, routing.Route{ch.Address(), routing.LocalAddress("echo_service")}, "Hello Ockam!")
//
// Protocol flow (protocol.md §10.3–§10.6):
//
//	initiator (i_remote, i_local)                     listener L          responder (r_remote, r_local)
//	M1 from i_remote to route … L                ───► L starts a responder, re-addresses M1 to
//	   payload 00 20 <e.pub>   (enum, Apr 2021)         [r_remote] with the original return route
//	   or      20 <e.pub> 00   (struct, from 29 Apr)    payload Vec<u8>(M1)                ───►
//	                                             ◄───────────────────────────  M2 from r_remote, Vec<u8>(96)
//	remote_route := M2's return route                                         remote_route := M1's return route
//	M3 from i_remote, Vec<u8>(64)                ─────────────────────────────────────────────►  (complete)
//	(complete)
//	send to [i_local, w, …]:  step i_local off; inner = BARE TransportMessage{onward [w, …], return as sent}
//	   payload Vec<u8>(n u16 BE ‖ AES-256-GCM(k2, 00×10 ‖ n, aad "", inner)) from i_remote ───►
//	                                                  r_remote: decrypt, return = [r_local, …], route to w
//	                                             ◄───  replies to [r_local, …] come back the same way, under k1
//
// After the handshake, traffic flows between the two address_remote
// addresses along the routes the handshake messages came back on, not
// through the listener or a hub's forwarder.
//
// A channel end encrypts in a worker goroutine of its own, one message at a
// time, so that counters leave in order, and decrypts in another, in the
// order messages arrive. A message whose payload a transport read into
// memory of its own and routed straight to the channel
// (node.Message.ExclusivePayload: the TCP transport without ReuseBodies)
// is decrypted where it lies, and the plaintext delivered shares that
// memory; any other payload, including one an inline worker passed on, is
// left as it is and decrypted into a new buffer. Likewise on the way out: a
// sender that gives up the memory around its payload (node.WithPayloadRoom,
// as a portal does for its full reads) has it sealed where it lies, the
// data-message header and the inner message's head written in the room in
// front and the tag in the room behind, the same bytes on the wire; the
// sender's payload is then ciphertext. Without the mark, or without room
// enough, the message is sealed into a new buffer and the sender's bytes
// are left as they are (Stats.SealedInPlace counts the former). The
// handshake has a goroutine of its own, which ends once the channel is
// established, so that a slow Config.VerifyPeer never holds up a
// connection.
//
// # What a channel authenticates, and what it does not
//
// Every data message is encrypted and authenticated with AES-256-GCM under
// keys only the two ends know, and the whole inner TransportMessage is
// encrypted: the routes beyond the channel (which worker, which reply path)
// and the payload never appear on the wire. A relay, such as the hub, sees
// only the outer messages: the route to each end's address_remote, the random
// addresses, the sizes and timing of the messages, and which connections talk
// to each other. That metadata leaks; the message size reveals the inner
// size to within the lengths of the routes.
//
// The handshake is Noise XX: each end proves it holds the private key of the
// static public key it sends (Channel.PeerStatic). That is not an identity.
// Without more, a channel is encrypted but NOT authenticated: anyone on the
// route, the hub included, can answer M1 with their own M2 and sit in the
// middle. A channel authenticates its peer only when the peer's static key
// is known in advance and checked: keep the keys with LoadOrCreateKey, pin
// the responder's key with Config.ExpectedPeerStatic, and restrict
// initiators with ListenerConfig.Authorized (or AllowKeys). Even then, a key
// authenticates the channel, not the messages' inner return routes, which the
// peer chooses freely. A peer may also route through the channel to any
// worker or transport address on this node, as Ockam intends: put only the
// workers it may use behind a listener's node, or check Listener.Channel
// in those workers. The handshake hash (Channel.HandshakeHash) is unique to
// the channel, for higher layers to bind identities to it.
//
// # Ockam deviations and additions
//
// Deviations of the 2021 protocol from standard Noise, kept for
// compatibility, are commented where they are implemented: the reversed
// Split keys (package noise and Channel's key use), the u16 nonce carried in
// clear in front of each ciphertext with empty AAD (framing.go), the BARE
// Vec<u8> and listener-message wrappings (framing.go), sending from and to
// address_remote and prepending address_local (channel.go).
//
// Beyond what 2021 Rust did, and invisible on the wire to a 2021 peer:
//   - a receiver drops duplicated or replayed data messages with a sliding
//     window (ReplayWindow counters); Rust accepted any nonce;
//   - a sender refuses its 65536th message with ErrNonceExhausted (Rust
//     refused too, with a generic error) instead of wrapping the counter;
//   - malformed, forged or replayed messages are dropped and counted in
//     Stats, and the channel goes on carrying genuine ones;
//   - listeners bound half-open handshakes (HandshakeTimeout,
//     MaxPendingHandshakes, MaxPendingPerSource: a flooding source only
//     displaces its own) and established channels (IdleTimeout,
//     MaxChannels), and may restrict initiators by identity;
//   - static keys persist (LoadOrCreateKey: no symbolic link, regular file
//     of the current user, mode 0600) and are pinned or recorded
//     (KnownPeers); handshake secrets are cleared when done.
//
// The package imports only noise, node, routing, bare and the standard
// library; it never dials or listens.
package securechannel
