// Command 10-routing-to-hub sends a message to the echo_service of a hub and
// prints the reply: the Go port of the Rust get_started example
// 10-routing-to-hub. The route is 1#HUB => echo_service.
//
// Start a hub, then run it from the module root:
//
//	go run ./cmd/ockamhub node -listen 127.0.0.1:4000
//	go run ./examples/10-routing-to-hub -hub 127.0.0.1:4000
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

	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	hubAddr, err := tr.Connect(ctx, hub)
	if err != nil {
		return err
	}

	// Send a message to the echo_service worker on the hub.
	route := routing.NewRoute(hubAddr, routing.LocalAddress("echo_service"))
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
