package tcp_test

import (
	"net"
	"testing"

	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestBudgetPerSource: the per-IP cap was per node only, so one address
// that connected to many nodes (MaxConnsPerIP each) could spend the whole
// process budget, and every node then refused everyone. With
// LimitPerSource, one source holds at most its share across all the
// transports of the budget, while another source still gets in and
// connections this process dials are not counted against any source.
func TestBudgetPerSource(t *testing.T) {
	b := tcp.NewBudget(100).LimitPerSource(3)
	a, addrA := serveNode(t, tcp.Config{Budget: b, MaxConnsPerIP: 10})
	bb, addrB := serveNode(t, tcp.Config{Budget: b, MaxConnsPerIP: 10})
	var kept []*rawPeer
	for _, addr := range []string{addrA, addrA, addrB} {
		kept = append(kept, dialPeer(t, addr))
	}
	for _, p := range kept {
		if !p.echoes() {
			t.Fatal("a connection within the source's share was not served")
		}
	}
	for _, addr := range []string{addrA, addrB} {
		if !dialPeer(t, addr).closed() {
			t.Fatalf("%s: a connection over the source's share of the budget was not closed", addr)
		}
	}
	waitUntil(t, "refusals counted", func() bool {
		return a.tcp.Stats().RefusedBudget == 1 && bb.tcp.Stats().RefusedBudget == 1
	})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", addrB)
	if err != nil {
		t.Fatal(err)
	}
	other := &rawPeer{t, c}
	t.Cleanup(func() { c.Close() })
	if !other.echoes() {
		t.Fatal("another source was refused")
	}
	kept[0].Close()
	waitUntil(t, "unit given back to the source", func() bool { return b.InUse() == 3 })
	if !dialPeer(t, addrB).echoes() {
		t.Fatal("the source's connection after one closed was not served")
	}
}
