// Command 11-forwarding-through-hub-responder runs an Echoer worker at
// "echo_service" on a node that accepts no connections (as behind a NAT),
// and makes it reachable through a hub: the Go port of the Rust get_started
// example 11-forwarding-through-hub-responder.
//
// It connects to the hub and registers with the hub's forwarding_service,
// which creates a forwarder on the hub. Whatever reaches that forwarder is
// relayed over this node's connection to echo_service, with its return
// route intact, so echo_service replies straight to the sender
// (protocol.md §8.2). Run 11-forwarding-through-hub-initiator with the
// printed forwarding address to send it a message.
//
// Start a hub, then run it from the module root:
//
//	go run ./cmd/ockamhub node -listen 127.0.0.1:4000
//	go run ./examples/11-forwarding-through-hub-responder -hub 127.0.0.1:4000
//
// It prints the forwarder's address on the hub, and the whole forwarding
// route, for instance:
//
//	Forwarding address for echo_service: 1a840b9c
//	forwarding address: 1#127.0.0.1:4000 => 0#1a840b9c
//
// then one line per message it echoes. It runs until interrupted (SIGINT or
// SIGTERM), or until the hub closes the connection.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/examples/getstarted"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n := node.New(node.Config{})
	defer n.Close()

	// Start an Echoer worker at "echo_service".
	if err := n.StartWorker(ctx, "echo_service", getstarted.Echoer{}); err != nil {
		return err
	}

	// Connect to the hub.
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	setup, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hubAddr, err := tr.Connect(setup, hub)
	if err != nil {
		return err
	}

	// Ask the hub for a forwarder to echo_service.
	fwd, err := forwarding.Register(setup, n, routing.NewRoute(hubAddr), "echo_service")
	if err != nil {
		return err
	}
	defer fwd.Close()
	fmt.Println("Forwarding address for echo_service:", fwd.RemoteAddress())
	fmt.Println("forwarding address:", fwd.Route())

	// Run until interrupted. The forwarder lives as long as the connection
	// it was registered over, so stop when the hub closes it.
	select {
	case <-ctx.Done():
		return nil
	case <-tr.Done(hubAddr):
		return errors.New("the hub closed the connection")
	}
}
