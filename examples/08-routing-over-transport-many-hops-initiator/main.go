// Command 08-routing-over-transport-many-hops-initiator routes a message over
// two TCP hops, to the "echoer" worker of a third node: the Go port of the
// Rust get_started example 08-routing-over-transport-many-hops-initiator.
//
// The route is 1#MIDDLE => 1#RESPONDER => echoer. This node connects only to
// the middle node; the middle node relays the message over its own connection
// to the responder, and the reply comes back the same way.
//
// Start 08-routing-over-transport-many-hops-responder, then
// 08-routing-over-transport-many-hops-middle, then:
//
//	go run ./examples/08-routing-over-transport-many-hops-initiator -middle 127.0.0.1:4000 -responder 127.0.0.1:6000
//
// The -responder address must be written exactly as the middle node's
// -responder flag: it names the middle node's connection. It prints:
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
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	middle := flag.String("middle", "127.0.0.1:4000", "TCP address of the middle node")
	responder := flag.String("responder", "127.0.0.1:6000", "TCP address of the responder node, as the middle node connected to it")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*middle, *responder); err != nil {
		log.Fatal(err)
	}
}

func run(middle, responder string) error {
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
	if _, err := tr.Connect(ctx, middle); err != nil {
		return err
	}

	route := routing.NewRoute(
		// Send the message to the middle node,
		routing.TCPAddress(middle),
		// then to the responder node,
		routing.TCPAddress(responder),
		// to the echoer worker on the responder node.
		routing.LocalAddress("echoer"),
	)
	if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it.
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply from %s: %w", route, err)
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
