package hub_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
)

// TestForwarderCyclesLeakNothing: 10,000 connect → register → disconnect
// cycles leave no forwarders, workers or goroutines behind.
func TestForwarderCyclesLeakNothing(t *testing.T) {
	cycles := 10_000
	if testing.Short() {
		cycles = 1000
	}
	h, addr := hubtest.Start(t, hub.Config{})
	register := frames(t, "capture-gs-11-responder-to-hub")[0]
	baseWorkers := h.Stats().Node.Workers
	baseGoroutines := runtime.NumGoroutine()
	for i := range cycles {
		c := dialRaw(t, addr)
		c.write(register)
		c.readFrame()
		c.Close()
		if i%1000 == 999 {
			t.Logf("%d cycles: %d forwarders live", i+1, h.Stats().Forwarders)
		}
	}
	waitFor(t, 5*time.Second, "every forwarder removed", func() bool {
		s := h.Stats()
		return s.Forwarders == 0 && s.TCP.Conns == 0 && s.Node.Workers == baseWorkers
	})
	if got := h.Stats().ForwardersRegistered; got != uint64(cycles) {
		t.Fatalf("registered %d, want %d", got, cycles)
	}
	waitFor(t, 5*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= baseGoroutines
	})
}

func TestForwarderIdleExpiry(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{ForwarderIdleTimeout: 100 * time.Millisecond})
	c := dialRaw(t, addr)
	c.write(frames(t, "capture-gs-11-responder-to-hub")[0])
	c.readFrame()
	if h.Stats().Forwarders != 1 {
		t.Fatal("no forwarder")
	}
	waitFor(t, 2*time.Second, "idle forwarder expired", func() bool { return h.Stats().Forwarders == 0 })
	if h.Stats().ForwardersExpired != 1 {
		t.Fatalf("expired = %d", h.Stats().ForwardersExpired)
	}
	// The connection itself stays open and usable.
	c.write(frames(t, "frame-echo-request")[0])
	c.readFrame()
}
