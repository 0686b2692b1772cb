// Command 09-secure-channel-over-many-transport-hops-responder runs the
// responder of an end-to-end secure channel over two TCP hops: a node with an
// Echoer at "echoer" and a secure channel listener at
// "secure_channel_listener", accepting TCP connections. It is the Go port of
// the Rust get_started example
// 09-secure-channel-over-many-transport-hops-responder.
//
// Run it from the module root, then the middle node and the initiator:
//
//	go run ./examples/09-secure-channel-over-many-transport-hops-responder -listen 127.0.0.1:6000
//
// It prints its identity, the static public key an initiator pins, and
// "listening on IP:PORT" once it accepts connections (with port 0 the system
// picks a free port), then one line per message the Echoer receives:
//
//	identity: 5f2c…(64 hex digits)
//	listening on 127.0.0.1:6000
//
// With -key FILE the key is kept in FILE (mode 0600), so the identity stays
// the same across runs. It runs until interrupted (SIGINT or SIGTERM).
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
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6000", "TCP address to listen on (port 0 picks a free port)")
	keyFile := flag.String("key", "", "file holding the listener's static private key; created if missing (default: a new key every run)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*listen, *keyFile); err != nil {
		log.Fatal(err)
	}
}

func run(listen, keyFile string) error {
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

	// Start an Echoer worker at address "echoer".
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
		return err
	}

	// Create a secure channel listener at address "secure_channel_listener".
	// Any initiator may use it, as in 2021 (Rust initiators have a new key
	// every run); set Authorized to admit only listed identities.
	cfg := securechannel.ListenerConfig{AcceptAnyInitiator: true}
	if keyFile != "" {
		if cfg.StaticKeyPair, err = securechannel.LoadOrCreateKey(keyFile); err != nil {
			return err
		}
	}
	l, err := securechannel.Listen(ctx, n, "secure_channel_listener", cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("identity:", l.Identity())

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
