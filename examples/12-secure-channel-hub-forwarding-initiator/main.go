// Command 12-secure-channel-hub-forwarding-initiator creates a secure channel
// to a listener on a node it cannot connect to, through a forwarder on a
// hub, and sends a message through it: the Go port of the Rust get_started
// example 12-secure-channel-hub-forwarding-initiator.
//
// The route to the listener is 1#HUB => 0#FORWARDER => secure_channel. The
// hub's forwarder relays the first handshake message to the responder's
// node; the rest of the handshake and all messages then travel directly
// between the two channel ends through the hub, which sees only ciphertext:
// neither "Hello Ockam!" nor "echo_service" crosses it in clear.
//
// Start a hub and 12-secure-channel-hub-forwarding-responder, then run it
// from the module root with the forwarding address the responder printed:
//
//	go run ./examples/12-secure-channel-hub-forwarding-initiator -hub 127.0.0.1:4000 -forwarder 1a840b9c -peer IDENTITY
//
// -peer is the responder's "identity:" line: any other responder, the hub
// included, is refused. Rust's 2021 example pinned nothing; with
// -insecure-accept-any-peer instead, the channel is encrypted, but anyone
// on the route could be the other end. It prints:
//
//	App Received: Hello Ockam!
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
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func main() {
	hub := flag.String("hub", "127.0.0.1:4000", "TCP address of the hub")
	forwarder := flag.String("forwarder", "", "forwarding address of secure_channel on the hub, as printed by the responder (required)")
	peer := flag.String("peer", "", "the responder's identity (its \"identity:\" line): refuse any other responder")
	flag.StringVar(peer, "peer-key", "", "the same as -peer (the flag's former name)")
	insecure := flag.Bool("insecure-accept-any-peer", false, "accept any responder: the channel is encrypted but NOT authenticated")
	timeout := flag.Duration("timeout", 10*time.Second, "give up after this long")
	flag.Parse()
	log.SetFlags(0)
	if *forwarder == "" {
		fmt.Fprintln(os.Stderr, "the -forwarder flag is required")
		flag.Usage()
		os.Exit(2)
	}
	if *peer == "" && !*insecure {
		fmt.Fprintln(os.Stderr, "-peer IDENTITY is required (the responder's \"identity:\" line), or -insecure-accept-any-peer")
		flag.Usage()
		os.Exit(2)
	}
	if *peer == "" {
		log.Print("WARNING: -insecure-accept-any-peer: the channel is encrypted but NOT authenticated; anyone on the route could be the other end")
	}
	if err := run(*hub, *forwarder, *peer, *timeout); err != nil {
		log.Fatal(err)
	}
}

func run(hub, forwarder, peer string, timeout time.Duration) error {
	// The forwarding address is a local address on the hub: "1a840b9c" or
	// "0#1a840b9c".
	fwdAddr, err := routing.ParseAddress(forwarder)
	if err != nil {
		return err
	}
	if !fwdAddr.IsLocal() {
		return fmt.Errorf("forwarding address %s: not a local address on the hub", fwdAddr)
	}
	cfg := securechannel.Config{InsecureAcceptAnyPeer: peer == ""}
	if peer != "" {
		id, err := securechannel.ParseIdentity(peer)
		if err != nil {
			return fmt.Errorf("-peer: %w", err)
		}
		cfg.ExpectedPeerStatic = id.Key()
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	n := node.New(node.Config{})
	defer n.Close()

	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()
	hubAddr, err := tr.Connect(ctx, hub)
	if err != nil {
		return err
	}

	// Connect to the secure channel listener through the hub's forwarder,
	// and perform a handshake.
	route := routing.NewRoute(hubAddr, fwdAddr, routing.LocalAddress("secure_channel"))
	channel, err := securechannel.Create(ctx, n, route, cfg)
	if err != nil {
		return err
	}

	// Send a message to the echo_service worker on the responder node,
	// through the secure channel.
	echoRoute := routing.NewRoute(channel.Address(), routing.LocalAddress("echo_service"))
	if err := n.Send(ctx, echoRoute, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive a reply and print it. Only a reply that came out of
	// the channel counts (the channel puts its address at the head of the
	// return route): anyone on the route can send a plaintext message to
	// "app", but not through the channel.
	var m *node.Message
	for m == nil || len(m.Return()) == 0 || m.Return()[0] != channel.Address() {
		if m, err = n.Receive(ctx); err != nil {
			return fmt.Errorf("waiting for the reply through %s: %w", route, err)
		}
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
