package tcp_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Adversarial tests of cut-through (Config.CutThrough): what a remote peer
// can make a relay do to other connections through it.

// TestCutThroughForwarderStoppedMidFrame: a frame whose head arrived while
// its forwarder existed, and whose payload arrived after the forwarder was
// stopped (its registrant gone, its idle timeout, a name released), is
// dropped as the usual path drops it (the route is judged once the frame
// is whole), not relayed to where the forwarder used to lead.
func TestCutThroughForwarderStoppedMidFrame(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("cut-through is Linux only")
	}
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	// A second way to the same destination, for the marker frame.
	if _, err := r.node.StartWorkerConfig(context.Background(), benchForwarder{r}, node.WorkerConfig{Addresses: []string{"fwd2"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	src := r.dial(t)
	f := seqFrame(t, 0, 0, 60000)
	if _, err := src.Write(f[:20000]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame to take a pipe", func() bool { return tcp.PipesInUse() == 1 })
	if err := r.node.StopWorker(context.Background(), "fwd"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Write(f[20000:]); err != nil {
		t.Fatal(err)
	}
	// Then, on the same connection (so after it), a frame by the other
	// forwarder: it must be the first the destination sees.
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd2")},
		Return: routing.Route{routing.LocalAddress("s0000000")}, Payload: seqPayload(0, 1, 100)}
	marker, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Write(marker); err != nil {
		t.Fatal(err)
	}
	if _, seq := checkSeq(t, readOne(t, recv)); seq != 1 {
		t.Fatalf("the destination got frame %d, sent to a forwarder stopped before the frame was whole; want only the marker (1)", seq)
	}
	waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
}

// seqPayload is seqFrame's payload.
func seqPayload(id, seq, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(seq)
	}
	binary.BigEndian.PutUint32(p, uint32(id))
	binary.BigEndian.PutUint32(p[4:], uint32(seq))
	return p
}
