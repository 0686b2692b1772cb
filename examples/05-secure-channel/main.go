// Command 05-secure-channel creates a secure channel between two workers on
// one node and sends a message through it: the Go port of the Rust
// get_started example 05-secure-channel.
//
// A secure channel listener runs at "secure_channel_listener". The app
// creates a channel to it (a Noise XX handshake), then sends "Hello Ockam!"
// to [channel, echoer]: the message is encrypted at the channel's
// address_local, decrypted by the listener's responder, and delivered to the
// Echoer, whose reply comes back through the channel (protocol.md §10).
//
// Run it from the module root:
//
//	go run ./examples/05-secure-channel
//
// It prints:
//
//	Address: 0#echoer, Received: Hello Ockam!
//	App Received: Hello Ockam!
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ockamhub/ockamhub/examples/getstarted"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	// Start an Echoer worker at address "echoer".
	if err := n.StartWorker(ctx, "echoer", getstarted.Echoer{}); err != nil {
		return err
	}

	// Create a secure channel listener at address "secure_channel_listener".
	// Any initiator may use it (the 2021 behaviour); list identities in
	// Authorized to admit only those.
	l, err := securechannel.Listen(ctx, n, "secure_channel_listener", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if err != nil {
		return err
	}
	defer l.Close()

	// Connect to the secure channel listener and perform a handshake.
	channel, err := securechannel.Create(ctx, n, routing.NewRoute(routing.LocalAddress("secure_channel_listener")), securechannel.Config{
		// Pin the listener's identity: a channel to anyone else is refused.
		// Across nodes, the identity is the "identity:" line a listener
		// prints (securechannel.ParseIdentity reads it).
		ExpectedPeerStatic: l.StaticPublic(),
	})
	if err != nil {
		return err
	}

	// Send a message to the echoer worker, via the secure channel.
	route := routing.NewRoute(channel.Address(), routing.LocalAddress("echoer"))
	if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it.
	m, err := n.Receive(ctx)
	if err != nil {
		return err
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
