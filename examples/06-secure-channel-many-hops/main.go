// Command 06-secure-channel-many-hops creates a secure channel with a
// listener that is three hops away, on the same node: the Go port of the
// Rust get_started example 06-secure-channel-many-hops.
//
// The route to the listener is h1 => h2 => h3 => secure_channel_listener,
// through three Hop workers, each of which steps itself off the onward route
// and adds itself to the return route. Every handshake message and every
// encrypted message passes through the hops, which see only ciphertext;
// the channel's ends see the plaintext.
//
// Run it from the module root:
//
//	go run ./examples/06-secure-channel-many-hops
//
// It prints one line per message each hop relays, then:
//
//	Address: 0#echoer, Received: Hello Ockam!
//	...
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

	// Start 3 hop workers at addresses "h1", "h2" and "h3".
	for _, h := range []string{"h1", "h2", "h3"} {
		if err := n.StartWorker(ctx, h, getstarted.Hop{}); err != nil {
			return err
		}
	}

	// Create a secure channel listener at address "secure_channel_listener".
	// Any initiator may use it (the 2021 behaviour); list identities in
	// Authorized to admit only those.
	l, err := securechannel.Listen(ctx, n, "secure_channel_listener", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if err != nil {
		return err
	}
	defer l.Close()

	// Route to the secure channel listener, via "h1", "h2" and "h3".
	route := routing.MustParseRoute("h1 => h2 => h3 => secure_channel_listener")

	// Connect to the secure channel listener and perform a handshake.
	channel, err := securechannel.Create(ctx, n, route, securechannel.Config{
		// Pin the listener's identity: a channel to anyone else is refused.
		// Across nodes, the identity is the "identity:" line a listener
		// prints (securechannel.ParseIdentity reads it).
		ExpectedPeerStatic: l.StaticPublic(),
	})
	if err != nil {
		return err
	}

	// Send a message to the echoer worker, via the secure channel.
	echoerRoute := routing.NewRoute(channel.Address(), routing.LocalAddress("echoer"))
	if err := n.Send(ctx, echoerRoute, "Hello Ockam!"); err != nil {
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
