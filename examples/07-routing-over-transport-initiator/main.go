// Command 07-routing-over-transport-initiator routes a message to the
// "echoer" worker of another node, over a TCP connection: the Go port of the
// Rust get_started example 07-routing-over-transport-initiator. Start
// 07-routing-over-transport-responder first.
//
// The route is 1#RESPONDER => echoer: the first hop is the TCP connection
// to the responder node, the second the worker on that node.
//
// Run it from the module root:
//
//	go run ./examples/07-routing-over-transport-initiator -responder 127.0.0.1:4000
//
// It prints:
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
	responder := flag.String("responder", "127.0.0.1:4000", "TCP address of the responder node")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*responder); err != nil {
		log.Fatal(err)
	}
}

func run(responder string) error {
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

	// Create a TCP connection to the responder node.
	conn, err := tr.Connect(ctx, responder)
	if err != nil {
		return err
	}

	// Send a message to the "echoer" worker, on a different node, over the
	// TCP connection.
	route := routing.NewRoute(conn, routing.LocalAddress("echoer"))
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
