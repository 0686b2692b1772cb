package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	tu := &Tuner{headroom: 32 << 20}
	tests := []struct {
		live uint64
		want int
	}{
		{0, 100}, // no collection yet
		{1 << 10, 800},
		{4 << 20, 800},
		{8 << 20, 400},
		{32 << 20, 100},
		{1 << 30, 100},
	}
	for _, tt := range tests {
		if got := tu.percent(tt.live); got != tt.want {
			t.Errorf("percent(%d) = %d, want %d", tt.live, got, tt.want)
		}
	}
}

// TestStartRaisesGOGC: with a small live heap the tuner raises GOGC after
// collections, and Stop puts it back.
func TestStartRaisesGOGC(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the tuner stands aside")
	}
	tu := Start(256 << 20)
	if tu == nil {
		t.Fatal("no tuner")
	}
	deadline := time.Now().Add(10 * time.Second)
	for tu.Percent() <= 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d", tu.Percent())
		}
		runtime.GC()
		runtime.Gosched()
	}
	// The runtime agrees.
	if cur := debug.SetGCPercent(tu.Percent()); cur != tu.Percent() {
		t.Errorf("runtime GOGC %d, tuner says %d", cur, tu.Percent())
	}
	tu.Stop()
	if cur := debug.SetGCPercent(100); cur != 100 {
		t.Errorf("GOGC after Stop = %d, want 100", cur)
	}
}

func TestStartStandsAside(t *testing.T) {
	if Start(0) != nil {
		t.Error("headroom 0 started a tuner")
	}
	t.Setenv("GOGC", "200")
	if Start(1<<20) != nil {
		t.Error("a tuner started despite GOGC")
	}
	var nilTuner *Tuner
	nilTuner.Stop() // must not panic
}
