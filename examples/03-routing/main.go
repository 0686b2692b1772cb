// Command 03-routing sends a message to an Echoer worker through a Hop
// worker, along the route h1 => echoer: the Go port of the Rust get_started
// example 03-routing.
//
// Messages carry two routes: the onward route (where the message goes next)
// and the return route (the way back). The Hop at "h1" steps itself off the
// onward route and prepends itself to the return route, so the reply comes
// back through it too.
//
// Run it from the module root:
//
//	go run ./examples/03-routing
//
// It prints:
//
//	Address: 0#h1, Received: onward 0#h1 => 0#echoer, return 0#app
//	Address: 0#echoer, Received: Hello Ockam!
//	Address: 0#h1, Received: onward 0#h1 => 0#app, return 0#echoer
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

	// Start a worker, of type Echoer, at address "echoer".
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
		return err
	}
	// Start a worker, of type Hop, at address "h1".
	if err := n.StartWorker(ctx, "h1", getstarted.Hop{}); err != nil {
		return err
	}

	// Send a message to the worker at address "echoer",
	// via the worker at address "h1".
	if err := n.Send(ctx, routing.MustParseRoute("h1 => echoer"), "Hello Ockam!"); err != nil {
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
