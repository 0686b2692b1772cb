// Package tcp is the Ockam TCP transport (address type 1), byte-compatible
// with the 2021 Rust nodes and the Elixir Hub (protocol.md §7).
//
// Framing: every frame is a u16 big-endian body length followed by one BARE
// TransportMessage (package routing). Bodies are 1..65535 bytes; nothing is
// sent on connect; both sides send and receive on one connection.
//
// Protocol flow, for a node sending to [1#127.0.0.1:4000, echo_service]:
//
//	node.Route     head is type 1: the message goes to this Transport
//	RouteMessage   pops 1#127.0.0.1:4000 (a transport hop never crosses
//	               its own hop), finds that connection, queues the rest
//	writer         frames and writes; queued frames are batched into one
//	               write while the queue is not empty
//	peer reader    decodes, prepends 1#<this side as the peer sees it> to
//	               the return route, routes by the onward route's head
//
// The hot path (a hub relaying a message from one connection to another)
// makes no goroutine hand-off: each connection's reader routes what it reads
// through inline workers to the destination's send queue and, once the
// message's routing has returned, writes that queue itself with one
// non-blocking (vectored) write. While more frames are buffered it defers
// those writes to just before its next read, so that a burst becomes one
// write per destination. Only what a socket does not take at once is left,
// with the right to write, to a writer goroutine that exits once the queue
// is empty. An application's goroutine (not a reader: a portal's reader
// sending data, a secure channel's encryptor) that sends a small message
// (up to 4 KiB) to an idle connection writes it the same way, with one
// non-blocking write from its own goroutine, for the first few messages
// after input arrives or a burst is written; a burst, a busy connection or
// bulk data is batched by a writer goroutine as before, and a sender never
// waits on the socket. An idle connection therefore holds one goroutine
// (its reader), no queue array and, on Linux, no read buffer (buffers come
// from a pool when the socket is readable). Queues stay bounded in messages and bytes
// (Config.SendQueueSize, SendQueueBytes), and a sender that finds one full
// waits at most Config.QueueFullWait, as before.
//
// A connection is named by a type-1 address: for an accepted connection the
// peer's "ip:port" as Rust prints it (127.0.0.1:52000, [::1]:52000); for a
// dialled one the string given to Connect (127.0.0.1:4000 or
// hub.example:4000), so routes may use either form the program chose. The
// transport never dials because of a route: a message for a type-1 address
// with no connection is dropped and counted (no open relay).
//
// Bad input from the network closes only that connection: a frame that does
// not decode, an empty frame, or a partial frame that does not complete
// within Config.FrameTimeout. Messages that decode but cannot be routed
// (unknown worker, empty onward route) are dropped and counted, as the
// Elixir Hub drops them. Such events are logged at most a few times per
// second. The heartbeat that Rust Ockam sends from December 2021, frame
// 00 04 01 00 00 00 (empty routes, empty payload), is dropped silently and
// counted; the transport never sends it (a 2021 Rust reader panics on it).
//
// Admission happens at accept, before any read: the allow-list
// (Config.Allow, SetAllow), the per-transport and per-IP caps, and a Budget
// shared with the other transports of the process. A refused connection is
// closed at once and counted by reason. Optionally (hubs), a connection
// that keeps sending to addresses that do not exist is slowed, then closed
// (Config.ProbeBurst).
package tcp
