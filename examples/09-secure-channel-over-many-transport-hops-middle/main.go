// Command 09-secure-channel-over-many-transport-hops-middle runs the middle
// node of a secure channel over two TCP hops: a node with only a TCP
// transport, which relays what it receives to the next TCP hop. It is the Go
// port of the Rust get_started example
// 09-secure-channel-over-many-transport-hops-middle.
//
// It connects to the responder first, then listens. The middle node relays
// the handshake and then only ciphertext: it never holds a key, and the
// route beyond the channel (to "echoer") is inside the encryption.
//
// Start 09-secure-channel-over-many-transport-hops-responder first, then:
//
//	go run ./examples/09-secure-channel-over-many-transport-hops-middle -listen 127.0.0.1:4000 -responder 127.0.0.1:6000
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

	// Create a TCP connection to the responder node. The transport never
	// dials on a route's behalf, so the connection must be open, under the
	// name the initiator's route uses.
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
