// Package loadgen is the load generator behind `ockamhub bench`: it drives
// a hub with one of five scenarios, runs the same traffic through plain TCP
// baselines, and reports throughput, latency percentiles, errors, and the
// hub's CPU and memory.
//
// # Scenarios
//
//	echo     client → hub → echo_service → client                    round trip
//	forward  sender → hub → forwarder → receiver                      one way
//	         (Config.Reply: receiver → hub → sender as well)           round trip
//	bulk     forward with 60000-byte payloads                          MB/s
//	secure   client → hub → forwarder → listener node, through a secure
//	         channel, to its echo_service and back                     round trip
//	idle     N connections, each with a registered forwarder, held     bytes/conn
//
// Every payload starts with an 8-byte send timestamp (nanoseconds since the
// run began, from the monotonic clock). Senders and receivers are in this
// process, so one clock times one-way trips and round trips alike.
//
// Each client keeps at most Config.Inflight messages in flight: its sender
// waits while that many are unanswered (echo, secure, reply) or not yet
// received (forward, bulk; the receiver tells the sender in process, so no
// acknowledgement crosses the wire). After the warm-up, completions are
// counted and timed for Config.Duration; then senders stop, and what is still
// in flight is waited for (a few seconds at most) and otherwise counted as
// lost.
//
// # Client paths
//
// The raw client (Raw, the default) is built so that the hub is measured,
// not the client. A sender copies a pre-encoded frame into a bufio.Writer,
// patches the timestamp, and flushes only when its window is full (the loop
// would block) or the buffer is; one reader goroutine per connection looks
// at each frame in place in a 128 KiB bufio.Reader, skips the routes without
// decoding them, reads the timestamp, and publishes completions to the
// sender in batches. Nothing is allocated per message.
//
// The library client (Library, `--client node`) is what an application
// does: a node.Node and a tcp.Transport per client (and per receiver),
// Node.Send with a fresh payload per message, Mailbox.Receive, and
// forwarding.Register for the receivers. secure always uses it, with
// securechannel.Create and securechannel.Listen; a client opens a new
// channel every 60000 messages, before the channel's u16 nonce runs out.
// idle uses raw connections: connect, send the registration frame, read the
// reply, hold.
//
// # Baselines
//
// The baselines (Baselines) carry the same traffic without the hub: the
// same u16-length frames holding the same TransportMessages (the hub's
// forwarder address is replaced by "00000000", of the same length), sent
// and read by the same raw client code, so that the bytes on the wire and
// the client's work match. TargetRelay is one plain Go relay hop (Relay, or
// PairRelay pairing each sender's connection with its receiver's: io.Copy
// both ways, one upstream connection per downstream one); for echo it
// forwards to EchoServer, which writes back every frame unchanged (it only
// reads the length). TargetDirect talks to EchoServer directly, or connects
// each sender straight to its receiver. TargetPlain is a plain Go program
// doing the hub's work on every frame and writing from its reading
// goroutine: FrameEchoServer (decode, swap the routes, encode, write back)
// for echo, and a frame relay between each sender and its receiver
// (NewFramePairRelay) for forward and bulk, so that a round trip crosses
// two plain hops. The baselines run in this process, or as child processes
// (Config.StartServer), whose CPU time gives Result.MsgsPerServerCPUSec.
//
// # Measuring the hub
//
// CPU time is read from /proc/PID/stat (utime + stime) over the measured
// window, memory from VmRSS in /proc/PID/status. For a hub in a separate
// process (a Child, or a PID) those are the hub's own; for a hub in this
// process only this process's totals exist, which include the clients.
//
// The package never listens or dials except on 127.0.0.1 (and, to open
// more connections than one ephemeral port range allows, from the loopback
// source addresses 127.0.0.2 and up) and the hub address it is given.
package loadgen
