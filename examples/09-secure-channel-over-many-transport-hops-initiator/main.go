// Command 09-secure-channel-over-many-transport-hops-initiator creates an
// end-to-end encrypted secure channel over two TCP hops, then routes a
// message through it to a worker on the third node: the Go port of the Rust
// get_started example 09-secure-channel-over-many-transport-hops-initiator.
//
// The route to the listener is 1#MIDDLE => 1#RESPONDER =>
// secure_channel_listener. This node connects only to the middle node. The
// message "Hello Ockam!" goes to [channel, echoer]: the middle node relays
// it encrypted, inner route included.
//
// Start 09-secure-channel-over-many-transport-hops-responder, then
// 09-secure-channel-over-many-transport-hops-middle, then:
//
//	go run ./examples/09-secure-channel-over-many-transport-hops-initiator -middle 127.0.0.1:4000 -responder 127.0.0.1:6000 -peer IDENTITY
//
// -peer is the "identity:" line the responder printed: the channel is
// refused if anyone else answers, the middle node included. (Rust's 2021
// example pinned nothing; -insecure-accept-any-peer does the same, and the
// channel is then encrypted but not authenticated.) The -responder address
// must be written exactly as the middle node's -responder flag: it names
// the middle node's connection. It prints:
//
//	App Received: Hello Ockam!
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	middle := flag.String("middle", "127.0.0.1:4000", "TCP address of the middle node")
	responder := flag.String("responder", "127.0.0.1:6000", "TCP address of the responder node, as the middle node connected to it")
	peer := flag.String("peer", "", "the responder's identity (its \"identity:\" line): refuse any other responder")
	insecure := flag.Bool("insecure-accept-any-peer", false, "accept any responder: the channel is encrypted but NOT authenticated")
	flag.Parse()
	log.SetFlags(0)
	cfg := securechannel.Config{InsecureAcceptAnyPeer: *insecure}
	switch {
	case *peer != "":
		id, err := securechannel.ParseIdentity(*peer)
		if err != nil {
			log.Fatalf("-peer: %v", err)
		}
		cfg.ExpectedPeerStatic = id.Key()
	case *insecure:
		log.Print("WARNING: -insecure-accept-any-peer: the channel is encrypted but NOT authenticated; anyone on the route could be the other end")
	default:
		log.Fatal("-peer IDENTITY is required (the responder's \"identity:\" line), or -insecure-accept-any-peer")
	}
	if err := run(*middle, *responder, cfg); err != nil {
		log.Fatal(err)
	}
}

func run(middle, responder string, cfg securechannel.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Initialize the TCP transport.
	// ConnectSettle: the responder may be a 2021 Rust node (protocol.md §7.1).
	tr, err := tcp.New(n, tcp.Config{ConnectSettle: tcp.DefaultConnectSettle})
	if err != nil {
		return err
	}
	defer tr.Close()

	// Create a TCP connection to the middle node.
	middleAddr, err := tr.Connect(ctx, middle)
	if err != nil {
		return err
	}

	// Connect to a secure channel listener two TCP hops away and perform a
	// handshake.
	route := routing.NewRoute(middleAddr, routing.TCPAddress(responder), routing.LocalAddress("secure_channel_listener"))
	channel, err := securechannel.Create(ctx, n, route, cfg)
	if err != nil {
		return err
	}

	// Send a message to the echoer worker via the channel.
	echoerRoute := routing.NewRoute(channel.Address(), routing.LocalAddress("echoer"))
	if err := n.Send(ctx, echoerRoute, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it. Only a reply that came out of
	// the channel counts (the channel puts its address at the head of the
	// return route): anyone on the route can send a plaintext message to
	// "app", but not through the channel.
	var m *node.Message
	for m == nil || len(m.Return()) == 0 || m.Return()[0] != channel.Address() {
		if m, err = n.Receive(ctx); err != nil {
			return fmt.Errorf("waiting for the reply through %s: %w", route, err)
		}
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
