package provision_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// conn is a library client connection to a node.
type conn struct {
	n   *node.Node
	tr  *tcp.Transport
	hub routing.Address
}

func dial(t *testing.T, addr string) (*conn, error) {
	t.Helper()
	n := node.New(node.Config{})
	t.Cleanup(func() { n.Close() })
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	hub, err := tr.Connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &conn{n, tr, hub}, nil
}

// echo reports whether an echo through c comes back within a second.
func (c *conn) echo(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := c.n.Send(ctx, routing.Route{c.hub, routing.LocalAddress("echo_service")}, "ping"); err != nil {
		return err
	}
	m, err := c.n.Receive(ctx)
	if err != nil {
		return err
	}
	if got, _ := node.Body[string](m); got != "ping" {
		return errors.New("wrong echo " + got)
	}
	return nil
}

// echoFromNew dials addr and echoes once.
func echoFromNew(t *testing.T, addr string) error {
	c, err := dial(t, addr)
	if err != nil {
		return err
	}
	return c.echo(t)
}

// TestAllowListApplied reproduces finding 5 ("anyone can use any user's
// node") end to end: the owner's allow-list, set through the provisioner
// as the API and the page do, refuses real connections from 127.0.0.1
// within a second, closes the open one, survives a restart, and opens
// again when emptied.
func TestAllowListApplied(t *testing.T) {
	e := newEnv(t, provision.Config{})
	acct := e.account(t, "alice")
	ctx := t.Context()
	n, err := e.p.Create(ctx, acct, "demo")
	if err != nil {
		t.Fatal(err)
	}
	open, err := dial(t, n.Address())
	if err != nil {
		t.Fatal(err)
	}
	if err := open.echo(t); err != nil {
		t.Fatalf("open node: %v", err)
	}
	got, err := e.p.SetAllow(ctx, acct, n.ID, []netip.Prefix{netip.MustParsePrefix("203.0.113.9/24")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Allow) != 1 || got.Allow[0].String() != "203.0.113.0/24" {
		t.Fatalf("SetAllow returned allow %v", got.Allow)
	}
	changed := time.Now()
	if err := open.echo(t); err == nil {
		t.Fatal("the open connection from a network no longer allowed still echoes")
	}
	if err := echoFromNew(t, n.Address()); err == nil {
		t.Fatal("a new connection from outside the allow-list was served")
	}
	if d := time.Since(changed); d > 3*time.Second {
		t.Fatalf("took %v to apply", d)
	}
	// Another account cannot change it.
	if _, err := e.p.SetAllow(ctx, e.account(t, "mallory"), n.ID, nil); err == nil {
		t.Fatal("another account changed the allow-list")
	}
	// It is stored: a restart keeps it.
	if err := e.p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	if err := echoFromNew(t, n.Address()); err == nil {
		t.Fatal("after a restart, a connection from outside the allow-list was served")
	}
	if _, err := e.p.SetAllow(ctx, acct, n.ID, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	if err := echoFromNew(t, n.Address()); err != nil {
		t.Fatalf("allowed 127.0.0.1: %v", err)
	}
	if _, err := e.p.SetAllow(ctx, acct, n.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := echoFromNew(t, n.Address()); err != nil {
		t.Fatalf("empty allow-list: %v", err)
	}
	if s := e.p.Stats()["demo"]; s.TCP.RefusedAllow < 1 {
		t.Fatalf("refusals not counted: %+v", s.TCP)
	}
}

// TestNamedForwardingPerNode reproduces finding 6 in serve: forwarder
// tokens were one operator-wide set shared by every user's node. Now each
// owner turns named forwarding on for their node and gives names tokens
// (stored hashed); another node is unaffected, and the settings survive a
// restart.
func TestNamedForwardingPerNode(t *testing.T) {
	e := newEnv(t, provision.Config{})
	alice, bob := e.account(t, "alice"), e.account(t, "bob")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	na, err := e.p.Create(ctx, alice, "alice-node")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := e.p.Create(ctx, bob, "bob-node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.SetNamedForwarding(ctx, alice, na.ID, true); err != nil {
		t.Fatal(err)
	}
	const token = "printer-token-0123456789"
	got, err := e.p.SetForwarderToken(ctx, alice, na.ID, "printer", token)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ForwarderNames) != 1 || got.ForwarderNames[0] != "printer" || !got.NamedForwarding {
		t.Fatalf("node after settings: %+v", got)
	}
	if _, err := e.p.SetForwarderToken(ctx, bob, na.ID, "printer", "bobs-token-0123456789"); err == nil {
		t.Fatal("bob set a token on alice's node")
	}
	if _, err := e.p.SetForwarderToken(ctx, alice, na.ID, "short", "x"); !errors.Is(err, provision.ErrBadToken) {
		t.Fatalf("short token: %v", err)
	}
	check := func(when string) {
		t.Helper()
		c, err := dial(t, na.Address())
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{"", "wrong-token-0123456789"} {
			if _, err := forwarding.RegisterStatic(ctx, c.n, routing.Route{c.hub}, "printer", tok, "inbox"); !errors.Is(err, forwarding.ErrRefused) {
				t.Fatalf("%s: registering printer with token %q: %v, want ErrRefused", when, tok, err)
			}
		}
		if _, err := c.n.OpenMailbox("inbox"); err != nil {
			t.Fatal(err)
		}
		if _, err := forwarding.RegisterStatic(ctx, c.n, routing.Route{c.hub}, "printer", token, "inbox"); err != nil {
			t.Fatalf("%s: registering printer with its token: %v", when, err)
		}
		// Bob's node runs no named forwarding at all.
		b, err := dial(t, nb.Address())
		if err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if _, err := forwarding.RegisterStatic(short, b.n, routing.Route{b.hub}, "printer", token, "inbox"); err == nil {
			t.Fatalf("%s: bob's node accepted a named registration", when)
		}
	}
	check("running")
	if err := e.p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	check("after a restart")
	// Off: the service goes.
	if _, err := e.p.SetNamedForwarding(ctx, alice, na.ID, false); err != nil {
		t.Fatal(err)
	}
	v, err := e.p.Node(ctx, alice, na.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Services {
		if s == "static_forwarding_service" {
			t.Fatalf("named forwarding off, services %v", v.Services)
		}
	}
}

// TestForwarderTokensBounded: a node's owner could add forwarder tokens
// without end (each a store row, an entry in the hub's table copied on
// every change, a line on the page). Now a new name beyond
// MaxForwarderTokens is refused; replacing a token, or adding one after a
// delete, still works.
func TestForwarderTokensBounded(t *testing.T) {
	e := newEnv(t, provision.Config{})
	alice, bob := e.account(t, "alice"), e.account(t, "bob")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := e.p.Create(ctx, alice, "alice-node")
	if err != nil {
		t.Fatal(err)
	}
	const token = "a-token-of-enough-length"
	for i := range provision.MaxForwarderTokens {
		if _, err := e.p.SetForwarderToken(ctx, alice, n.ID, fmt.Sprintf("name%d", i), token); err != nil {
			t.Fatalf("token %d: %v", i+1, err)
		}
	}
	if _, err := e.p.SetForwarderToken(ctx, alice, n.ID, "one-more", token); !errors.Is(err, provision.ErrTooManyForwarderTokens) {
		t.Fatalf("token %d: %v, want ErrTooManyForwarderTokens", provision.MaxForwarderTokens+1, err)
	}
	if _, err := e.p.SetForwarderToken(ctx, bob, n.ID, "one-more", token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob on alice's full node: %v, want ErrNotFound (not the count)", err)
	}
	if _, err := e.p.SetForwarderToken(ctx, alice, n.ID, "name0", token+"-new"); err != nil {
		t.Fatalf("replacing a token at the limit: %v", err)
	}
	if _, err := e.p.DeleteForwarderToken(ctx, alice, n.ID, "name1"); err != nil {
		t.Fatal(err)
	}
	got, err := e.p.SetForwarderToken(ctx, alice, n.ID, "one-more", token)
	if err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	if len(got.ForwarderNames) != provision.MaxForwarderTokens {
		t.Fatalf("%d forwarder names, want %d", len(got.ForwarderNames), provision.MaxForwarderTokens)
	}
}
