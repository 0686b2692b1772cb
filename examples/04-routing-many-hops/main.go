// Command 04-routing-many-hops sends a message to an Echoer worker through
// three Hop workers, along the route h1 => h2 => h3 => echoer: the Go port of
// the Rust get_started example 04-routing-many-hops.
//
// Run it from the module root:
//
//	go run ./examples/04-routing-many-hops
//
// Each hop prints what it relays; the program ends with:
//
//	App Received: Hello Ockam!
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ockamhub/ockamhub/examples/getstarted"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Start an Echoer worker at address "echoer".
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
		return err
	}
	// Start 3 hop workers at addresses "h1", "h2" and "h3".
	for _, addr := range []string{"h1", "h2", "h3"} {
		if err := n.StartWorker(ctx, addr, getstarted.Hop{}); err != nil {
			return err
		}
	}

	// Send a message to the echoer worker via the "h1", "h2" and "h3" workers.
	r := routing.MustParseRoute("h1 => h2 => h3 => echoer")
	if err := n.Send(ctx, r, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it.
	m, err := n.Receive(ctx)
	if err != nil {
		return err
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
