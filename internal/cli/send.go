package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// client is a node with a TCP transport, as a command-line client uses.
type client struct {
	node *node.Node
	tcp  *tcp.Transport
}

// newClient returns a client whose connections settle for settle after
// dialling (see tcp.Config.ConnectSettle).
func newClient(e *env, settle time.Duration) (*client, error) {
	n := node.New(node.Config{Logger: e.log})
	tr, err := tcp.New(n, tcp.Config{Logger: e.log, ConnectSettle: settle})
	if err != nil {
		n.Close()
		return nil, err
	}
	return &client{node: n, tcp: tr}, nil
}

func (c *client) Close() {
	c.tcp.Close()
	c.node.Close()
}

// connectFirstHop connects to the route's first hop, which must be TCP.
func (c *client) connectFirstHop(ctx context.Context, route routing.Route) error {
	first, _ := route.Next()
	if first.Type != routing.TCP {
		return usagef("the route must start with a TCP address (1#HOST:PORT), not %s", first)
	}
	if _, err := c.tcp.Connect(ctx, first.Value); err != nil {
		return err
	}
	return nil
}

func runSend(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("send", "--route ROUTE [flags] MESSAGE", `Connects to the route's first TCP hop, sends MESSAGE as a string (BARE-encoded
like a Rust String) along ROUTE, prints the reply string and exits 0. Exits 1
with a one-line error on timeout, refusal or a reply that is not a string,
and 2 on bad usage.

Examples:
  ockamhub send --route "1#127.0.0.1:4000 => echo_service" hello
  ockamhub send --secure --peer IDENTITY --route "1#127.0.0.1:4000 => 0#ALIAS => secure_channel" hello

With --secure, the responder must prove the identity given by --peer (the
listener's "identity:" line). Without --peer, the identity first seen for
the route is recorded in --known-peers and any later different identity is
refused, as ssh does with known_hosts. --insecure-accept-any-peer accepts
anyone: encrypted, but not authenticated.`)
	routeText := fs.String("route", "", "route to send along, e.g. \"1#127.0.0.1:4000 => echo_service\" (required)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	settle := fs.Duration("settle", 10*time.Millisecond, "pause after connecting, before sending: 2021 Rust listeners may drop a reply sent very soon after a connection opens")
	secure := addSecureSendFlags(fs)
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	to, err := secure.destination()
	if err != nil {
		return err
	}
	if *routeText == "" {
		return usagef("--route is required")
	}
	if len(pos) != 1 {
		return usagef("want exactly one MESSAGE argument, got %d (quote a message with spaces)", len(pos))
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	route, err := routing.ParseRoute(*routeText)
	if err != nil {
		return usagef("bad --route: %v", err)
	}
	if route[0].Type != routing.TCP {
		return usagef("the route must start with a TCP address (1#HOST:PORT), not %s", route[0])
	}
	if len(route) < 2 {
		return usagef("the route ends at the TCP hop %s: name a worker after it, e.g. \"%s => echo_service\"", route[0], route[0])
	}
	setupLog()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := newClient(e, *settle)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.connectFirstHop(ctx, route); err != nil {
		return timeoutErr(err, *timeout)
	}
	dest, err := secure.route(ctx, e, c, route, to)
	if err != nil {
		return timeoutErr(err, *timeout)
	}
	if err := c.node.Send(ctx, dest, pos[0]); err != nil {
		return timeoutErr(err, *timeout)
	}
	m, err := secure.receive(ctx, e, c)
	if err != nil {
		err = fmt.Errorf("waiting for a reply from %s: %w", route, err)
		if hint := secure.noReplyHint(); hint != "" {
			err = fmt.Errorf("%w (%s)", err, hint)
		}
		return timeoutErr(err, *timeout)
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return fmt.Errorf("the reply from %s is not a string: %w", m.Return(), err)
	}
	fmt.Fprintln(e.stdout, reply)
	return nil
}

func timeoutErr(err error, d time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %s", d, oneLine(err))
	}
	return errors.New(oneLine(err))
}
