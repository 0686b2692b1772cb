package loadgen_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/loadgen"
)

// TestRunBaselines runs the baselines, which need no hub, briefly.
func TestRunBaselines(t *testing.T) {
	for _, sc := range []loadgen.Scenario{loadgen.Echo, loadgen.Forward, loadgen.Bulk} {
		for _, target := range loadgen.Baselines {
			for _, reply := range []bool{false, true} {
				if reply && sc == loadgen.Echo {
					continue
				}
				name := string(sc) + "/" + string(target)
				if reply {
					name += "/reply"
				}
				t.Run(name, func(t *testing.T) {
					// A short window first; a machine starved of CPU (CI under
					// load, the race detector) may complete nothing in it, so
					// an empty window is measured again, longer: the baseline
					// must still carry traffic.
					var res *loadgen.Result
					for d := 150 * time.Millisecond; ; d *= 4 {
						var err error
						res, err = loadgen.Run(t.Context(), loadgen.Config{
							Scenario: sc, Target: target, Clients: 2, Inflight: 4, Reply: reply,
							Duration: d, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
						})
						if err != nil {
							t.Fatal(err)
						}
						if res.Msgs > 0 || d >= 2*time.Second {
							break
						}
						t.Logf("nothing completed in %v; measuring again for longer", d)
					}
					if res.Msgs == 0 || res.MsgsPerSec <= 0 || res.MBPerSec <= 0 || res.Latency.P50 <= 0 || res.Latency.P999 < res.Latency.P50 {
						t.Errorf("implausible result %+v", res)
					}
					if res.Errors != 0 {
						t.Errorf("errors = %d, want 0", res.Errors)
					}
				})
			}
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  loadgen.Config
	}{
		{"no scenario", loadgen.Config{Hub: "127.0.0.1:1"}},
		{"unknown scenario", loadgen.Config{Scenario: "nope", Hub: "127.0.0.1:1"}},
		{"negative clients", loadgen.Config{Scenario: loadgen.Echo, Hub: "127.0.0.1:1", Clients: -1}},
		{"negative inflight", loadgen.Config{Scenario: loadgen.Echo, Hub: "127.0.0.1:1", Inflight: -1}},
		{"negative duration", loadgen.Config{Scenario: loadgen.Echo, Hub: "127.0.0.1:1", Duration: -time.Second}},
		{"size too small", loadgen.Config{Scenario: loadgen.Echo, Hub: "127.0.0.1:1", Size: 7}},
		{"size too large", loadgen.Config{Scenario: loadgen.Bulk, Hub: "127.0.0.1:1", Size: 65535}},
		{"no hub", loadgen.Config{Scenario: loadgen.Echo}},
		{"idle baseline", loadgen.Config{Scenario: loadgen.Idle, Target: loadgen.TargetRelay}},
		{"library baseline", loadgen.Config{Scenario: loadgen.Echo, Target: loadgen.TargetRelay, Client: loadgen.Library}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadgen.Run(context.Background(), tt.cfg); err == nil {
				t.Error("Run: no error")
			}
		})
	}
}

// TestRunCancelled: cancelling the context ends a run early and closes
// everything (goleak checks the goroutines).
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := loadgen.Run(ctx, loadgen.Config{Scenario: loadgen.Forward, Target: loadgen.TargetRelay, Clients: 2, Duration: time.Minute})
	if err == nil {
		t.Fatal("Run: no error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after cancellation", d)
	}
}
