// Command 07-routing-over-transport-responder runs a node with an Echoer
// worker at "echoer" and a TCP listener: the Go port of the Rust get_started
// example 07-routing-over-transport-responder. Run
// 07-routing-over-transport-initiator to send it a message.
//
// Run it from the module root:
//
//	go run ./examples/07-routing-over-transport-responder -listen 127.0.0.1:4000
//
// It prints "listening on IP:PORT" once it accepts connections (with port 0
// the system picks a free port), then one line per message it echoes, and
// runs until interrupted (SIGINT or SIGTERM).
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

	"github.com/ockamhub/ockamhub/examples/getstarted"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:4000", "TCP address to listen on (port 0 picks a free port)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*listen); err != nil {
		log.Fatal(err)
	}
}

func run(listen string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	n := node.New(node.Config{})
	defer n.Close()

	// Initialize the TCP transport.
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()

	// Create an echoer worker.
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
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

	// Run until interrupted.
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}
