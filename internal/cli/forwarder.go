package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

func runForwarder(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("forwarder", "--hub HOST:PORT [flags]", `Registers with the hub's forwarding_service, prints
  forwarding address: 1#HOST:PORT => 0#ALIAS
then echoes back (and logs) every string that arrives through that address,
until stopped. If the hub restarts or the network drops, it reconnects with
jittered exponential backoff, registers again and prints the new
"forwarding address:" line. Anyone can then reach it with:
  ockamhub send --route "1#HOST:PORT => 0#ALIAS" hi`)
	hubAddr := fs.String("hub", "", "the hub's HOST:PORT (required)")
	name := fs.String("name", "", "register this name with the hub's static_forwarding_service (address forward_to_NAME) instead of a random address; the hub must run with --static-forwarding")
	token := fs.String("token", "", "token for --name, when the hub restricts names")
	reconnect := fs.Bool("reconnect", true, "after losing the hub, reconnect with backoff, register again and print the new address; false exits with an error instead")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the hub to answer a registration")
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *hubAddr == "" {
		return usagef("--hub is required")
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if _, _, err := net.SplitHostPort(*hubAddr); err != nil {
		return usagef("bad --hub %q: want HOST:PORT", *hubAddr)
	}
	setupLog()
	c, err := newClient(e, 0) // it only connects to a hub
	if err != nil {
		return err
	}
	defer c.Close()
	log := e.log
	err = c.node.StartWorker(ctx, "echoer", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		body, err := node.Body[string](m)
		if err != nil {
			return fmt.Errorf("message from %s is not a string: %w", m.Return(), err)
		}
		log.Info("received", "message", body, "from", m.Return().String())
		return s.Send(ctx, m.Return(), body)
	}))
	if err != nil {
		return err
	}
	if !*reconnect {
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		hub, err := c.tcp.Connect(rctx, *hubAddr)
		if err != nil {
			return err
		}
		var rf *forwarding.RemoteForwarder
		if *name != "" {
			rf, err = forwarding.RegisterStatic(rctx, c.node, routing.Route{hub}, *name, *token, "echoer")
		} else {
			rf, err = forwarding.Register(rctx, c.node, routing.Route{hub}, "echoer")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "forwarding address: %s\n", rf.Route())
		select {
		case <-ctx.Done():
			return nil
		case <-c.tcp.Done(hub):
			return fmt.Errorf("connection to the hub %s closed", *hubAddr)
		}
	}
	err = forwarding.Maintain(ctx, c.node, c.tcp, forwarding.MaintainConfig{
		Hub:             *hubAddr,
		Destination:     "echoer",
		Name:            *name,
		Token:           *token,
		RegisterTimeout: *timeout,
		OnRegistered: func(route routing.Route) {
			fmt.Fprintf(e.stdout, "forwarding address: %s\n", route)
			log.Info("registered", "forwarding_address", route.String())
		},
		OnDisconnected: func(err error) {
			log.Warn("hub unreachable; reconnecting", "hub", *hubAddr, "err", err)
		},
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
