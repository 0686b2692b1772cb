// Command 02-worker starts an Echoer worker at "echoer", sends it a message
// and prints the reply: the Go port of the Rust get_started example
// 02-worker.
//
// Run it from the module root:
//
//	go run ./examples/02-worker
//
// It prints:
//
//	Address: 0#echoer, Received: Hello Ockam!
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
	// Stop all workers, stop the node, clean up and return.
	defer n.Close()

	// Start a worker, of type Echoer, at address "echoer".
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
		return err
	}

	// Send a message to the worker at address "echoer".
	if err := n.Send(ctx, routing.MustParseRoute("echoer"), "Hello Ockam!"); err != nil {
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
