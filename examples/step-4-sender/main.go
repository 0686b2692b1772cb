// Command step-4-sender is the message sender of the March 2021 Rust guide,
// step 4 ("Message Forwarding with Ockam Hub"): it sends "This message goes
// via Hub" to a step-4-receiver through the receiver's forwarder on a hub,
// along the route 1#HUB => 0#FORWARDER, and prints the echo.
//
// Start a hub and step-4-receiver, then run it from the module root with the
// last address of the forwarding address the receiver printed:
//
//	go run ./examples/step-4-sender -hub 127.0.0.1:4000 -forwarder 1a840b9c
//
// It prints:
//
//	Echo message: This message goes via Hub
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
	forwarder := flag.String("forwarder", "", "the receiver's forwarder on the hub, e.g. 1a840b9c or 0#1a840b9c (required)")
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
	fwdAddr, err := routing.ParseAddress(forwarder)
	if err != nil {
		return err
	}
	if !fwdAddr.IsLocal() {
		return fmt.Errorf("forwarder %s: not a local address on the hub", fwdAddr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Connect to the hub.
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	hubAddr, err := tr.Connect(ctx, hub)
	if err != nil {
		return err
	}

	// Send a message to the forwarding address.
	route := routing.NewRoute(hubAddr, fwdAddr)
	if err := n.Send(ctx, route, "This message goes via Hub"); err != nil {
		return err
	}

	// Wait for the reply.
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply through %s: %w", route, err)
	}
	echo, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("Echo message:", echo)
	return nil
}
