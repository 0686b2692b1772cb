package provision_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// portRange returns n ports below the ephemeral range, at a random base so
// that parallel test processes rarely meet (the provisioner skips ports
// that are busy anyway).
func portRange(n int) provision.PortRange {
	first := 20000 + rand.IntN(10000)
	return provision.PortRange{First: first, Last: first + n - 1}
}

type env struct {
	st   *sqlstore.Store
	file string
	p    *provision.Local
	cfg  provision.Config
}

func newEnv(t *testing.T, cfg provision.Config) *env {
	t.Helper()
	e := &env{file: filepath.Join(t.TempDir(), "db")}
	var err error
	e.st, err = sqlstore.Open(t.Context(), e.file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	cfg.Store = e.st
	if cfg.ListenHost == "" {
		cfg.ListenHost = "127.0.0.1"
	}
	if cfg.Ports.First == 0 {
		cfg.Ports = portRange(10)
	}
	e.cfg = cfg
	e.start(t)
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	var err error
	e.p, err = provision.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := e.p
	t.Cleanup(func() { p.Shutdown(context.Background()) })
}

func (e *env) account(t *testing.T, name string) int64 {
	t.Helper()
	a, err := e.st.UpsertAccount(t.Context(), store.ProviderLocal, name, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// client is a node with a TCP transport connected to addr.
func client(t *testing.T, addr string) (*node.Node, routing.Address) {
	t.Helper()
	n := node.New(node.Config{})
	t.Cleanup(func() { n.Close() })
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	hub, err := tr.Connect(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	return n, hub
}

func echo(t *testing.T, addr string) { t.Helper(); hubtest.Echo(t, addr) }

func TestCreateEchoDelete(t *testing.T) {
	e := newEnv(t, provision.Config{})
	acct := e.account(t, "alice")
	n, err := e.p.Create(t.Context(), acct, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if n.Status != store.StatusRunning || n.Port < e.cfg.Ports.First || n.Port > e.cfg.Ports.Last || n.Hostname != "127.0.0.1" {
		t.Fatalf("Create: got %+v, want running on 127.0.0.1 in %s", n, e.cfg.Ports)
	}
	if want := []string{"echo_service", "forwarding_service"}; len(n.Services) < 2 || n.Services[0] != want[0] || n.Services[1] != want[1] {
		t.Fatalf("Services: got %v, want %v", n.Services, want)
	}
	echo(t, n.Address())
	got, err := e.p.Node(t.Context(), acct, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stats.MessagesIn != 1 || got.Stats.MessagesOut != 1 || got.Stats.Accepted != 1 {
		t.Fatalf("Stats after one echo: got %+v, want 1 message in, 1 out, 1 connection accepted", got.Stats)
	}
	if err := e.p.Delete(t.Context(), acct, n.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Node(t.Context(), acct, n.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Node after Delete: got %v, want ErrNotFound", err)
	}
	// The port is free again: we can bind it.
	ln, err := net.Listen("tcp", n.Address())
	if err != nil {
		t.Fatalf("port %d after Delete: %v", n.Port, err)
	}
	ln.Close()
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t, provision.Config{MaxNodesPerAccount: 1, Ports: portRange(2)})
	alice, bob, carol := e.account(t, "alice"), e.account(t, "bob"), e.account(t, "carol")
	ctx := t.Context()
	if _, err := e.p.Create(ctx, alice, "-bad"); !errors.Is(err, store.ErrInvalidName) {
		t.Fatalf("bad name: got %v, want ErrInvalidName", err)
	}
	if _, err := e.p.Create(ctx, alice, "demo"); err != nil {
		t.Fatal(err)
	}
	_, err := e.p.Create(ctx, alice, "second")
	if le, ok := errors.AsType[*provision.LimitError](err); !ok || le.Limit != 1 || !errors.Is(err, store.ErrNodeLimit) {
		t.Fatalf("second node at limit 1: got %v, want *LimitError{1}", err)
	}
	if _, err := e.p.Create(ctx, bob, "demo"); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("bob's demo: got %v, want ErrNameTaken", err)
	}
	if _, err := e.p.Create(ctx, bob, "bobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Create(ctx, carol, "carols"); !errors.Is(err, provision.ErrNoPorts) {
		t.Fatalf("third node on 2 ports: got %v, want ErrNoPorts", err)
	}
}

func TestSkipsBusyPorts(t *testing.T) {
	pr := portRange(3)
	busy, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(pr.First)))
	if err != nil {
		t.Skipf("cannot bind %d: %v", pr.First, err)
	}
	defer busy.Close()
	e := newEnv(t, provision.Config{Ports: pr})
	n, err := e.p.Create(t.Context(), e.account(t, "alice"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if n.Port == pr.First || n.Status != store.StatusRunning {
		t.Fatalf("Create with port %d busy: got port %d, status %s", pr.First, n.Port, n.Status)
	}
}

func TestRestore(t *testing.T) {
	e := newEnv(t, provision.Config{})
	acct := e.account(t, "alice")
	a, err := e.p.Create(t.Context(), acct, "first")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.p.Create(t.Context(), acct, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Create(t.Context(), acct, "third"); !errors.Is(err, provision.ErrClosed) {
		t.Fatalf("Create after Shutdown: got %v, want ErrClosed", err)
	}
	// Something else takes b's port while we are down.
	squat, err := net.Listen("tcp", b.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	e.start(t)
	ra, err := e.p.Node(t.Context(), acct, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Port != a.Port || ra.Status != store.StatusRunning {
		t.Fatalf("restored node: got port %d, status %s; want port %d, running", ra.Port, ra.Status, a.Port)
	}
	echo(t, ra.Address())
	rb, err := e.p.Node(t.Context(), acct, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Status != store.StatusFailed || rb.Reason == "" {
		t.Fatalf("node whose port is taken: got status %s, reason %q; want failed with a reason", rb.Status, rb.Reason)
	}
	t.Logf("failure reason: %s", rb.Reason)
	// A failed node can be deleted.
	if err := e.p.Delete(t.Context(), acct, b.ID); err != nil {
		t.Fatal(err)
	}
}

// TestIsolation checks that each node is its own hub: a forwarding
// address registered on one node does not exist on another.
func TestIsolation(t *testing.T) {
	e := newEnv(t, provision.Config{})
	na, err := e.p.Create(t.Context(), e.account(t, "alice"), "alice-node")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := e.p.Create(t.Context(), e.account(t, "bob"), "bob-node")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// Alice's worker registers a forwarder on her node.
	an, ahub := client(t, na.Address())
	inbox, err := an.OpenMailbox("inbox")
	if err != nil {
		t.Fatal(err)
	}
	fwd, err := forwarding.Register(ctx, an, routing.Route{ahub}, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	alias := routing.LocalAddress(fwd.RemoteAddress())
	// Bob sends to that alias on his own node: nothing arrives.
	bn, bhub := client(t, nb.Address())
	if err := bn.Send(ctx, routing.Route{bhub, alias}, "via bob's node"); err != nil {
		t.Fatal(err)
	}
	// Through Alice's node it arrives, and only that message.
	cn, chub := client(t, na.Address())
	if err := cn.Send(ctx, routing.Route{chub, alias}, "via alice's node"); err != nil {
		t.Fatal(err)
	}
	m, err := inbox.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := node.Body[string](m); got != "via alice's node" {
		t.Fatalf("alice's worker got %q, want only the message sent through her node", got)
	}
	short, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if m, err := inbox.Receive(short); err == nil {
		got, _ := node.Body[string](m)
		t.Fatalf("alice's worker got %q through bob's node", got)
	}
	rb, _ := e.p.Node(t.Context(), nb.AccountID, nb.ID)
	if rb.Stats.Dropped == 0 {
		t.Errorf("bob's node stats %+v: want the message to the unknown alias counted as dropped", rb.Stats)
	}
}

func TestHostname(t *testing.T) {
	for _, tt := range []struct{ name, domain, want string }{
		{"demo", "127.0.0.1", "127.0.0.1"},
		{"demo", "::1", "::1"},
		{"demo", "[::1]", "::1"},
		{"demo", "hub.example.com", "demo.hub.example.com"},
		{"demo", "localhost", "demo.localhost"},
	} {
		if got := provision.Hostname(tt.name, tt.domain); got != tt.want {
			t.Errorf("Hostname(%q, %q) = %q, want %q", tt.name, tt.domain, got, tt.want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want provision.PortRange
		ok   bool
	}{
		{"4001-4999", provision.PortRange{4001, 4999}, true},
		{"4001", provision.PortRange{4001, 4001}, true},
		{"5-4", provision.PortRange{}, false},
		{"0-10", provision.PortRange{}, false},
		{"1-70000", provision.PortRange{}, false},
		{"a-b", provision.PortRange{}, false},
	} {
		got, err := provision.ParsePortRange(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
