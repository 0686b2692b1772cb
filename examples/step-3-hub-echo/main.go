// Command step-3-hub-echo is the program of the March 2021 Rust guide, step 3
// ("Node and Ockam Hub"): it connects to a hub, sends "Hello you over
// there!" to the hub's echo_service along the route 1#HUB => echo_service,
// and prints the reply.
//
// Sending to a worker on a hub is just like sending to a worker on any
// other node. Start a hub, then run it from the module root:
//
//	go run ./cmd/ockamhub node -listen 127.0.0.1:4000
//	go run ./examples/step-3-hub-echo -hub 127.0.0.1:4000
//
// It prints:
//
//	Echo says: Hello you over there!
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
	hub := flag.String("hub", "127.0.0.1:4000", "TCP address of the hub")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*hub); err != nil {
		log.Fatal(err)
	}
}

func run(hub string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Connect to the hub, as to any peer.
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	hubAddr, err := tr.Connect(ctx, hub)
	if err != nil {
		return err
	}

	// Send a message to the hub's echo_service and wait for the reply.
	route := routing.NewRoute(hubAddr, routing.LocalAddress("echo_service"))
	if err := n.Send(ctx, route, "Hello you over there!"); err != nil {
		return err
	}
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply from %s: %w", route, err)
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("Echo says:", reply)
	return nil
}
