// Command step-2-server is the server of the March 2021 Rust guide, step 2
// ("Networking between Ockam Nodes"): a node that listens on TCP and runs a
// Responder worker at "echo_service", which prints every message it
// receives and sends it back. Run step-2-client to send it a message.
//
// Run it from the module root:
//
//	go run ./examples/step-2-server -listen 127.0.0.1:4000
//
// It prints "listening on IP:PORT" once it accepts connections (with port 0
// the system picks a free port), then one "Responder: ..." line per message,
// and runs until interrupted (SIGINT or SIGTERM).
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

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Responder prints every string it receives and sends it back to its sender.
type Responder struct{}

// HandleMessage prints the message and replies along its return route.
func (Responder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	msg, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("Responder:", msg)
	return s.Send(ctx, m.Return(), msg)
}

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

	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()

	// Create the Responder worker.
	if err := n.StartWorker(ctx, "echo_service", Responder{}); err != nil {
		return err
	}

	// Listen for connections from clients.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- tr.Serve(ln) }()
	fmt.Println("listening on", ln.Addr())

	// The server runs until interrupted.
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}
