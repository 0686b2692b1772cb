// Command step-4-receiver is the message receiver of the March 2021 Rust
// guide, step 4 ("Message Forwarding with Ockam Hub"): a worker that
// registers itself with a hub's forwarding_service, then echoes every
// message the hub forwards to it. Run step-4-sender with the printed
// forwarding address to send it a message.
//
// The worker, at "msg_receiver", sends "register" to
// 1#HUB => forwarding_service. The hub creates a forwarder and answers from
// it, so the answer's return route, 1#HUB => 0#FORWARDER, is the worker's
// forwarding address: messages sent there reach the worker over this node's
// connection to the hub, with a return route that leads back to their
// sender (protocol.md §8). Example 11 does the same with the library's
// forwarding.Register.
//
// Start a hub, then run it from the module root:
//
//	go run ./cmd/ockamhub node -listen 127.0.0.1:4000
//	go run ./examples/step-4-receiver -hub 127.0.0.1:4000
//
// It prints its forwarding address, for instance:
//
//	forwarding address: 1#127.0.0.1:4000 => 0#1a840b9c
//
// then one "Echoing message: ..." line per message. It runs until
// interrupted (SIGINT or SIGTERM), or until the hub closes the connection.
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

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// MsgReceiver registers with the forwarding service of the hub reached
// through Hub, hands the hub's answer to Registered, and echoes every later
// message back to its sender.
type MsgReceiver struct {
	Hub        routing.Address      // the connection to the hub
	Registered chan<- *node.Message // receives the hub's answer (buffered)

	registered bool
}

// Initialize sends the registration to the hub's forwarding service.
func (r *MsgReceiver) Initialize(ctx context.Context, s node.Sender) error {
	route := routing.NewRoute(r.Hub, routing.LocalAddress("forwarding_service"))
	return s.Send(ctx, route, "register")
}

// HandleMessage passes on the hub's answer, then echoes what is forwarded.
func (r *MsgReceiver) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	if !r.registered {
		// The first message is the hub's answer to the registration.
		r.registered = true
		r.Registered <- m
		return nil
	}
	msg, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("Echoing message:", msg)
	return s.Send(ctx, m.Return(), msg)
}

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

	// Start the receiver; it registers with the hub as it starts.
	registered := make(chan *node.Message, 1)
	rcv := &MsgReceiver{Hub: hubAddr, Registered: registered}
	if err := n.StartWorker(setup, "msg_receiver", rcv); err != nil {
		return err
	}

	// Wait for the hub's answer: the echoed "register", from the forwarder.
	var answer *node.Message
	select {
	case answer = <-registered:
	case <-setup.Done():
		return fmt.Errorf("waiting for the hub's forwarding_service: %w", setup.Err())
	}
	if body, err := node.Body[string](answer); err != nil || body != "register" || len(answer.Return()) < 2 {
		return fmt.Errorf("unexpected answer from the hub's forwarding_service (return route %s)", answer.Return())
	}
	fmt.Println("forwarding address:", answer.Return())

	// Run until interrupted, or until the hub closes the connection.
	select {
	case <-ctx.Done():
		return nil
	case <-tr.Done(hubAddr):
		return errors.New("the hub closed the connection")
	}
}
