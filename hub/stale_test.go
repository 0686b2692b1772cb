package hub_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
)

// TestStreamToGoneForwarderNotProbing: a peer streaming to a forwarder whose
// registrant has just disconnected (a portal outlet whose inlet died, a
// sender behind a restarted receiver) sends many messages to an address
// that no longer exists. That is not probing: the hub drops and counts them
// but neither slows nor closes the sender's connection, which may carry
// other traffic. (Before, 500 such messages spent the probe allowance and
// the connection was delayed, then closed.)
func TestStreamToGoneForwarderNotProbing(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	receiver := dialRaw(t, addr)
	receiver.write(frames(t, "capture-gs-11-responder-to-hub")[0])
	fwd := decode(t, receiver.readFrame()).Return[0].Value
	toFwd := subAddr(frames(t, "capture-gs-11-initiator-to-hub")[0], "9d7cda36", fwd)

	sender := dialRaw(t, addr)
	sender.write(toFwd)
	if m := decode(t, receiver.readFrame()); len(m.Return) != 2 {
		t.Fatalf("forwarded %v", m)
	}
	receiver.Close()
	waitFor(t, 5*time.Second, "the forwarder removed", func() bool { return h.Stats().Forwarders == 0 })

	before := h.Stats().TCP
	const stream = 500 // 5x the probe burst
	burst := bytes.Repeat(toFwd, stream)
	sender.write(burst)
	// The sender's connection still answers at once.
	sender.write(frames(t, "frame-echo-request")[0])
	if got, want := sender.readFrame(), frames(t, "frame-echo-reply")[0]; !bytes.Equal(got, want) {
		t.Fatalf("echo after the stream: %x", got)
	}
	s := h.Stats().TCP
	if s.ProbeDelayed != before.ProbeDelayed || s.ProbeClosed != before.ProbeClosed {
		t.Fatalf("probe delayed %d, closed %d: the stream to a gone forwarder was taken for probing", s.ProbeDelayed-before.ProbeDelayed, s.ProbeClosed-before.ProbeClosed)
	}
	if got := s.Unroutable - before.Unroutable; got != stream {
		t.Fatalf("unroutable %d, want %d (dropped and counted)", got, stream)
	}
}
