package cli

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// TestInletRouteRenewal: a secure inlet keeps its channel for new portals
// until the channel has used half of its message budget, then creates a
// new one; and it reconnects when the hub connection is gone.
func TestInletRouteRenewal(t *testing.T) {
	_, hubAddr := hubtest.Start(t, hub.Config{})
	e := &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	outletNode, err := newClient(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer outletNode.Close()
	hubA, err := outletNode.tcp.Connect(t.Context(), hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := securechannel.Listen(t.Context(), outletNode.node, secureChannelListener, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rf, err := forwarding.Register(t.Context(), outletNode.node, routing.Route{hubA}, secureChannelListener)
	if err != nil {
		t.Fatal(err)
	}

	c, err := newClient(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key, peer, known, insecure := filepath.Join(t.TempDir(), "key"), l.Identity().String(), "", false
	ir := &inletRoute{e: e, c: c, route: rf.Route(), secure: true, outlet: routing.LocalAddress("outlet"),
		idf: &initiatorFlags{key: &key, peer: &peer, knownPeers: &known, insecure: &insecure}}
	defer ir.close()

	r1, b1, err := ir.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r2, b2, err := ir.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Equal(r2) || b1 != b2 {
		t.Fatalf("a second portal got another channel: %s, %s", r1, r2)
	}
	for range portal.RustChannelMessages/2 + 1 {
		if !b1.Take() {
			t.Fatal("budget spent early")
		}
	}
	r3, b3, err := ir.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r3.Equal(r1) || b3 == b1 {
		t.Fatalf("no new channel after half the budget: %s", r3)
	}
	if len(r3) != 2 || r3[1] != routing.LocalAddress("outlet") {
		t.Fatalf("route %s, want [channel, outlet]", r3)
	}

	// The hub connection goes: the next portal reconnects and gets a
	// channel over the new connection.
	c.tcp.Disconnect(ir.hop)
	<-c.tcp.Done(ir.hop)
	r4, _, err := ir.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r4.Equal(r3) {
		t.Fatal("the same channel after the hub connection was lost")
	}
	if n := len(c.tcp.Connections()); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}
