// Package node is the Ockam node runtime: it hosts workers at local
// addresses and routes messages between them and the transports.
//
// A [Node] mirrors the Rust ockam_node of 2021 in idiomatic Go:
//
//	Rust                              Go
//	ctx.start_worker("echoer", w)     n.StartWorker(ctx, "echoer", w)
//	ctx.send(route, msg)              n.Send(ctx, route, msg)        (from "app")
//	ctx.receive::<String>()           m, _ := n.Receive(ctx); node.Body[string](m)
//	msg.return_route()                m.Return()
//	ctx.stop()                        n.Close()
//
// Workers implement [Worker]. Each runs in its own goroutine and handles one
// message at a time from a bounded mailbox; a worker may implement
// [Initializer] and [Shutdowner] for start and stop hooks. A [Mailbox] is an
// address whose messages a program pulls with Receive, like Rust's root
// context "app".
//
// Protocol flow (protocol.md §6): the node routes a [routing.TransportMessage]
// by the head of its onward route, without popping it:
//
//	type 0 (local)   delivered to the worker registered at that address
//	type ≠ 0         handed to the [Transport] registered for that type, which
//	                 removes its own hop before writing to the wire
//
// A worker that relays steps itself off the onward route; a reply goes to the
// return route as received. Sending to an unknown local address returns an
// error wrapping [ErrUnknownAddress]; an unknown transport type returns
// [ErrNoTransport]. A node configured with ControlPing answers the Elixir
// control ping: a message with an empty onward route and payload 0x00 is
// answered with payload 0x01 to its return route (protocol.md §9.5).
//
// Payloads are the BARE encoding of application values (package bare): Send
// encodes its argument with bare.Marshal, except a [Raw] value, which is sent
// as is.
package node
