// Command 08-routing-over-transport-many-hops-middle runs the middle node of
// a three-node route: a node with only a TCP transport, which relays what it
// receives to the next TCP hop. It is the Go port of the Rust get_started
// example 08-routing-over-transport-many-hops-middle.
//
// Like the Rust middle node, it first connects to the responder and then
// listens. The initiator sends along 1#MIDDLE => 1#RESPONDER => echoer: the
// frame it writes to the middle node still carries 1#RESPONDER, which the
// middle node routes over its connection to the responder. A TCP transport
// never dials on a route's behalf, so that connection must already be open,
// under the same text the initiator uses (protocol.md §6.6).
//
// Start 08-routing-over-transport-many-hops-responder first, then:
//
//	go run ./examples/08-routing-over-transport-many-hops-middle -listen 127.0.0.1:4000 -responder 127.0.0.1:6000
//
// It prints "listening on IP:PORT" once it accepts connections (with port 0
// the system picks a free port), and runs until interrupted (SIGINT or
// SIGTERM).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4000", "TCP address to listen on (port 0 picks a free port)")
	responder := flag.String("responder", "127.0.0.1:6000", "TCP address of the responder node")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*listen, *responder); err != nil {
		log.Fatal(err)
	}
}

func run(listen, responder string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n := node.New(node.Config{})
	defer n.Close()

	// Initialize the TCP transport.
	// ConnectSettle: the responder may be a 2021 Rust node (protocol.md §7.1).
	tr, err := tcp.New(n, tcp.Config{ConnectSettle: tcp.DefaultConnectSettle})
	if err != nil {
		return err
	}
	defer tr.Close()

	// Create a TCP connection to the responder node.
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = tr.Connect(dialCtx, responder)
	cancel()
	if err != nil {
		return err
	}

	// Create a TCP listener and wait for incoming connections.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ln) }()
	fmt.Println("listening on", ln.Addr())

	// Run until interrupted, routing messages.
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}
