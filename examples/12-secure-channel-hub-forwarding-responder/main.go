// Command 12-secure-channel-hub-forwarding-responder runs a secure channel
// listener on a node that accepts no connections (as behind a NAT), and
// makes it reachable through a hub: the Go port of the Rust get_started
// example 12-secure-channel-hub-forwarding-responder.
//
// It starts an Echoer at "echo_service" and a secure channel listener at
// "secure_channel", connects to the hub, and registers a forwarder for
// "secure_channel" with the hub's forwarding_service. An initiator then
// creates a channel along 1#HUB => 0#FORWARDER => secure_channel. After the
// handshake, the hub relays only ciphertext between the two channel ends
// (protocol.md §10.6).
//
// Start a hub, then run it from the module root:
//
//	go run ./cmd/ockamhub node -listen 127.0.0.1:4000
//	go run ./examples/12-secure-channel-hub-forwarding-responder -hub 127.0.0.1:4000
//
// It prints the listener's identity (its static public key, which
// initiators pin), the forwarder's address on the hub and the whole
// forwarding route, for instance:
//
//	identity: 0f3c…(64 hex digits)
//	Forwarding address for secure_channel: 1a840b9c
//	forwarding address: 1#127.0.0.1:4000 => 0#1a840b9c
//
// then one line per message the Echoer receives. With -key FILE the static
// key is kept in FILE (created with mode 0600), so it stays the same across
// runs. It runs until interrupted (SIGINT or SIGTERM), or until the hub
// closes the connection.
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
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	hub := flag.String("hub", "127.0.0.1:4000", "TCP address of the hub")
	keyFile := flag.String("key", "", "file holding the listener's static private key; created if missing (default: a new key every run)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*hub, *keyFile); err != nil {
		log.Fatal(err)
	}
}

func run(hub, keyFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Any initiator may use it, as in 2021 (Rust initiators have a new key
	// every run); set Authorized to admit only listed identities.
	cfg := securechannel.ListenerConfig{AcceptAnyInitiator: true}
	if keyFile != "" {
		var err error
		if cfg.StaticKeyPair, err = securechannel.LoadOrCreateKey(keyFile); err != nil {
			return err
		}
	}

	n := node.New(node.Config{})
	defer n.Close()

	// Start an Echoer worker at "echo_service".
	if err := n.StartWorker(ctx, "echo_service", getstarted.Echoer{}); err != nil {
		return err
	}

	// Create a secure channel listener at address "secure_channel".
	l, err := securechannel.Listen(ctx, n, "secure_channel", cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println("identity:", l.Identity())

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

	// Ask the hub for a forwarder to the secure channel listener.
	fwd, err := forwarding.Register(setup, n, routing.NewRoute(hubAddr), "secure_channel")
	if err != nil {
		return err
	}
	defer fwd.Close()
	fmt.Println("Forwarding address for secure_channel:", fwd.RemoteAddress())
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
