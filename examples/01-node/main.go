// Command 01-node starts a node and stops it right away: the Go port of the
// Rust get_started example 01-node.
//
// A node is where workers live. Starting one also opens its "app" mailbox,
// from which a program sends and at which it receives; stopping the node
// stops every worker and waits for them.
//
// Run it from the module root:
//
//	go run ./examples/01-node
package main

import (
	"fmt"
	"log"

	"github.com/ockamhub/ockamhub/node"
)

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	// Create a node.
	n := node.New(node.Config{})
	fmt.Println("node started")

	// Stop the node as soon as it starts.
	if err := n.Close(); err != nil {
		return err
	}
	fmt.Println("node stopped")
	return nil
}
