// Command step-2-client is the client of the March 2021 Rust guide, step 2
// ("Networking between Ockam Nodes"): it connects to step-2-server, sends
// "Hello you over there!" along the route 1#SERVER => echo_service and prints
// the reply.
//
// Start step-2-server first, then run it from the module root:
//
//	go run ./examples/step-2-client -server 127.0.0.1:4000
//
// It prints:
//
//	Received return message: 'Hello you over there!'
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
	server := flag.String("server", "127.0.0.1:4000", "TCP address of the server node")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*server); err != nil {
		log.Fatal(err)
	}
}

func run(server string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Create the TCP transport and connect to the server.
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	peer, err := tr.Connect(ctx, server)
	if err != nil {
		return err
	}

	// Send a message to the remote echo_service: first over the TCP
	// connection (an address of type 1), then to the worker on the server.
	route := routing.NewRoute(peer, routing.LocalAddress("echo_service"))
	if err := n.Send(ctx, route, "Hello you over there!"); err != nil {
		return err
	}

	// Then wait for a message back!
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply from %s: %w", route, err)
	}
	msg, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Printf("Received return message: '%s'\n", msg)
	return nil
}
