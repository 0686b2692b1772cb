// Command 11-forwarding-through-hub-initiator sends a message to a worker on
// a node it cannot connect to, through a forwarder on a hub: the Go port of
// the Rust get_started example 11-forwarding-through-hub-initiator. The
// route is 1#HUB => 0#FORWARDER; the hub's forwarder relays the message to
// the node that registered it.
//
// Start a hub and 11-forwarding-through-hub-responder, then run it from the
// module root with the forwarding address the responder printed:
//
//	go run ./examples/11-forwarding-through-hub-initiator -hub 127.0.0.1:4000 -forwarder 1a840b9c
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
	"os"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	hub := flag.String("hub", "127.0.0.1:4000", "TCP address of the hub")
	forwarder := flag.String("forwarder", "", "forwarding address of echo_service on the hub, as printed by the responder (required)")
	flag.Parse()
	log.SetFlags(0)
	if *forwarder == "" {
		fmt.Fprintln(os.Stderr, "the -forwarder flag is required")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*hub, *forwarder); err != nil {
		log.Fatal(err)
	}
}

func run(hub, forwarder string) error {
	// The forwarding address is a local address on the hub: "1a840b9c" or
	// "0#1a840b9c".
	fwdAddr, err := routing.ParseAddress(forwarder)
	if err != nil {
		return err
	}
	if !fwdAddr.IsLocal() {
		return fmt.Errorf("forwarding address %s: not a local address on the hub", fwdAddr)
	}

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

	// Send a message to the echo_service worker on the responder node,
	// through its forwarder on the hub.
	route := routing.NewRoute(hubAddr, fwdAddr)
	if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it.
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply through %s: %w", route, err)
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
