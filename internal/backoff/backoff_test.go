package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Factor: 2}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		for range 50 {
			d := p.Delay(n)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := (Policy{}).Delay(1000); d > 30*time.Second {
		t.Fatalf("zero policy: %v", d)
	}
}

func TestWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (Policy{Initial: time.Hour}).Wait(ctx, 0); err != context.Canceled {
		t.Fatalf("err = %v", err)
	}
}

func TestNextAccept(t *testing.T) {
	var d time.Duration
	for _, want := range []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000} {
		d = NextAccept(d)
		if d != want*time.Millisecond {
			t.Fatalf("NextAccept = %v, want %v", d, want*time.Millisecond)
		}
	}
}
