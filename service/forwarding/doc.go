// Package forwarding implements Ockam Hub's forwarding_service (the April
// 2021 "Alias" form, protocol.md §8.2, §9.2) and its client, the counterpart
// of Rust's RemoteForwarder.
//
// Protocol flow:
//
//  1. A node behind NAT sends any payload (Rust sends the BARE string
//     "register") from its worker F to [1#HUB, forwarding_service].
//     At the hub its return route is [C, F], C naming its connection.
//  2. The service starts a forwarder at a random address X (16 hex digits:
//     64 bits, where the Elixir Hub used 8 hex digits) holding
//     the route [C, F], and replies from X: onward [C, F], return [X],
//     payload unchanged. F therefore receives return [1#HUB, X]: that is
//     its forwarding address.
//  3. Anyone sends to [1#HUB, X, ...]. The forwarder replaces the whole
//     onward route by [C, F] (anything after X is discarded) and leaves
//     the return route and payload unchanged, so F's destination can reply
//     straight along the return route.
//
// Unlike the 2021 Hub, whose forwarders lived until it restarted, a forwarder
// here lives as long as the connection it was registered over (when the
// service is given a way to watch connections), and optionally until it has
// been idle for a while. The bytes on the wire are the same.
package forwarding
