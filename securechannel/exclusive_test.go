package securechannel_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestExclusivePayloadMarks: a TCP transport's reader says that the
// payloads it delivers are in memory of their own (node.Message.ExclusivePayload,
// which lets a channel decrypt them in place) only when it never reuses
// frame bodies; a local send never says so, nor a worker with a mailbox
// (such as a RemoteForwarder) passing a message on.
func TestExclusivePayloadMarks(t *testing.T) {
	hubAddr, _ := startRecordedHub(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sender, senderHub := tcpNode(t, hubAddr)
	toSender, err := forwarding.Register(ctx, sender, routing.Route{senderHub}, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer toSender.Close()
	for _, reuse := range []bool{false, true} {
		n := node.New(node.Config{})
		tr, err := tcp.New(n, tcp.Config{ReuseBodies: reuse})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { tr.Close(); n.Close() }()
		hubR, err := tr.Connect(ctx, hubAddr)
		if err != nil {
			t.Fatal(err)
		}
		marks := make(chan bool, 1)
		probe := node.HandlerFunc(func(_ context.Context, _ node.Sender, m *node.Message) error {
			marks <- m.ExclusivePayload()
			return nil
		})
		if _, err := n.StartWorkerConfig(ctx, probe, node.WorkerConfig{Addresses: []string{"probe"}, Inline: true}); err != nil {
			t.Fatal(err)
		}
		// A message from n tells the sender the hub's route back to n,
		// which leads to the probe without a forwarder.
		if err := n.Send(ctx, toSender.Route(), node.Raw([]byte("hi"))); err != nil {
			t.Fatal(err)
		}
		m, err := sender.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		direct := append(m.Return()[:len(m.Return())-1:len(m.Return())-1], routing.LocalAddress("probe"))
		for _, size := range []int{10, 60 << 10} {
			if err := sender.Send(ctx, direct, node.Raw(make([]byte, size))); err != nil {
				t.Fatal(err)
			}
			if got := <-marks; got != !reuse {
				t.Errorf("ReuseBodies %v, %d bytes over TCP: ExclusivePayload %v", reuse, size, got)
			}
		}
		// Through a forwarder on n: its worker has a mailbox.
		rf, err := forwarding.Register(ctx, n, routing.Route{hubR}, "probe")
		if err != nil {
			t.Fatal(err)
		}
		if err := sender.Send(ctx, rf.Route(), node.Raw(make([]byte, 60<<10))); err != nil {
			t.Fatal(err)
		}
		if <-marks {
			t.Errorf("ReuseBodies %v: a message passed on by a RemoteForwarder is marked exclusive", reuse)
		}
		rf.Close()
		if err := n.Send(ctx, routing.Route{routing.LocalAddress("probe")}, node.Raw([]byte("x"))); err != nil {
			t.Fatal(err)
		}
		if <-marks {
			t.Errorf("a local send is marked exclusive")
		}
	}
}

// TestMixedSizesThroughHub: small and large data messages (up to a portal's
// 60 KiB chunk; small frames share the reader's slabs, large ones are
// decrypted in place) go both ways through a channel over TCP and a hub,
// and arrive whole, byte for byte, in order; nothing is dropped as a
// forgery or a replay.
func TestMixedSizesThroughHub(t *testing.T) {
	const count = 300
	hubAddr, _ := startRecordedHub(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	responder, hubR := tcpNode(t, hubAddr)
	l := listen(t, responder, "secure_channel", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	rf, err := forwarding.Register(ctx, responder, routing.Route{hubR}, "secure_channel")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	initiator, _ := tcpNode(t, hubAddr)
	ch, err := securechannel.Create(ctx, initiator, rf.Route(), securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	rsink, err := responder.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer rsink.Close()
	isink, err := initiator.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer isink.Close()

	size := func(i int) int {
		switch {
		case i%5 == 0:
			return 60<<10 - i
		case i%3 == 0:
			return 2<<10 + i%40 - 20 // around the reader's slab frames
		}
		return 4 + i%50
	}
	fill := func(i int) []byte {
		p := make([]byte, size(i))
		for j := range p {
			p[j] = byte(i*31 + j*7)
		}
		binary.BigEndian.PutUint32(p, uint32(i))
		return p
	}
	check := func(dir string, i int, m *node.Message) {
		t.Helper()
		want, got := fill(i), m.Payload()
		if string(got) != string(want) {
			t.Fatalf("%s, message %d: got %d bytes starting %x, want %d bytes starting %x",
				dir, i, len(got), got[:min(len(got), 4)], len(want), want[:4])
		}
	}
	send := func(from *node.Node, route func() routing.Route) chan error {
		errc := make(chan error, 1)
		go func() {
			for i := range count {
				if err := from.Send(ctx, route(), node.Raw(fill(i))); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		return errc
	}

	// Initiator to responder; the first message's return route leads back.
	errc := send(initiator, func() routing.Route { return routing.Route{ch.Address(), rsink.Address()} })
	var back routing.Route
	for i := range count {
		m, err := rsink.Receive(ctx)
		if err != nil {
			t.Fatalf("to the responder, message %d: %v", i, err)
		}
		check("to the responder", i, m)
		back = routing.Route{m.Return()[0], isink.Address()}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Responder to initiator, back through the channel.
	errc = send(responder, func() routing.Route { return back })
	for i := range count {
		m, err := isink.Receive(ctx)
		if err != nil {
			t.Fatalf("to the initiator, message %d: %v", i, err)
		}
		check("to the initiator", i, m)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for _, st := range []securechannel.Stats{ch.Stats(), l.Stats()} {
		if st.Received != count || st.Sent != count || st.DecryptFailures != 0 || st.Replays != 0 {
			t.Errorf("stats %+v, want %d sent and received, no failures", st, count)
		}
	}
}
