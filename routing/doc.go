// Package routing is the Ockam v1 routing data model: [Address], [Route] and
// [TransportMessage], with their text syntax (for people) and their BARE
// binary encoding (for the wire). It performs no I/O.
//
// Text syntax (protocol.md §2.2, §3.2):
//
//	0#echo_service                    a local worker address (type 0)
//	echo_service                      the same: a bare name means type 0
//	1#127.0.0.1:4000                  a TCP address (type 1): ip:port text
//	1#127.0.0.1:4000 => echo_service  a route: addresses joined by "=>"
//
// Binary layout of a TransportMessage (protocol.md §5.2):
//
//	u8      version            always 0x01
//	uint    n_onward           then n_onward × address
//	uint    n_return           then n_return × address
//	uint    payload_len        then payload_len bytes of payload
//	address = u8 type ‖ uint len ‖ len bytes value
//
// The payload is opaque here: it is normally the BARE encoding of an
// application value (package bare), but relays never decode it.
//
// Protocol flow: a message's onward route names the hops still to go (head =
// next hop) and its return route the way back (head = most recent hop). A
// worker that relays steps itself off the onward route and, if replies should
// come back through it, prepends itself to the return route. See protocol.md
// §6 for the per-hop rules.
package routing
