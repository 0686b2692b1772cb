package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/cli"
	"github.com/ockamhub/ockamhub/loadgen"
)

// runBench runs `ockamhub bench args...` in process.
func runBench(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out bytes.Buffer
	errBuf := &scBuffer{}
	code = cli.Main(t.Context(), append([]string{"bench"}, args...), &out, errBuf)
	return out.String(), errBuf.String(), code
}

// TestBenchScenarios runs every scenario briefly against an in-process hub,
// with the baselines, and checks that the JSON holds sane numbers. It asserts
// no speed.
func TestBenchScenarios(t *testing.T) {
	short := []string{"--duration", "300ms", "--warmup", "100ms", "--clients", "2", "--inflight", "4", "--json", "--log-level", "warn"}
	tests := []struct {
		name    string
		args    []string
		targets []string
	}{
		{"echo", []string{"echo", "--baseline"}, []string{"hub", "relay", "direct", "plain"}},
		{"forward", []string{"forward", "--baseline", "--client", "both"}, []string{"hub", "hub", "relay", "direct", "plain"}},
		{"forward reply", []string{"forward", "--reply"}, []string{"hub"}},
		{"bulk", []string{"bulk", "--baseline", "--size", "20000"}, []string{"hub", "relay", "direct", "plain"}},
		{"secure", []string{"secure", "--baseline"}, []string{"hub", "relay", "direct", "plain"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rep loadgen.Report
			for attempt := 1; ; attempt++ {
				stdout, stderr, code := runBench(t, append(tt.args, short...)...)
				if code != 0 {
					t.Fatalf("exit %d, stderr:\n%s", code, stderr)
				}
				rep = loadgen.Report{}
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatalf("JSON: %v\n%s", err, stdout)
				}
				// A run can complete nothing, without errors, only if the
				// process got no CPU for the whole window: try again.
				if attempt == 3 || !starved(rep) {
					break
				}
				t.Logf("attempt %d: a run completed nothing (machine too busy?); again", attempt)
			}
			if rep.Machine.NumCPU < 1 || rep.Machine.GoVersion == "" || rep.Hub != "in-process" || rep.FileLimit.Hard == 0 {
				t.Errorf("report header %+v", rep)
			}
			if len(rep.Runs) != len(tt.targets) {
				t.Fatalf("%d runs, want %d", len(rep.Runs), len(tt.targets))
			}
			for i, r := range rep.Runs {
				if string(r.Target) != tt.targets[i] {
					t.Errorf("run %d target %s, want %s", i, r.Target, tt.targets[i])
				}
				if r.Msgs == 0 || r.MsgsPerSec <= 0 || r.MBPerSec <= 0 || r.Seconds <= 0 {
					t.Errorf("%s: no throughput: %+v", r.Target, r)
				}
				l := r.Latency
				if l.P50 <= 0 || l.P90 < l.P50 || l.P99 < l.P90 || l.P999 < l.P99 || l.Max < l.P999 {
					t.Errorf("%s: implausible latencies %+v", r.Target, l)
				}
				if r.Errors != 0 {
					t.Errorf("%s: %d errors (%d lost)", r.Target, r.Errors, r.Lost)
				}
				if r.ProcessRSSBytes == 0 {
					t.Errorf("%s: no process RSS", r.Target)
				}
			}
			if strings.Contains(strings.Join(tt.args, " "), "--baseline") {
				hubs := len(tt.targets) - len(loadgen.Baselines)
				want := hubs * len(loadgen.Baselines) // each hub run against every baseline
				if len(rep.Ratios) != want {
					t.Errorf("%d ratios, want %d", len(rep.Ratios), want)
				}
				for _, x := range rep.Ratios {
					if x.MsgsPerSec <= 0 || x.P50 <= 0 {
						t.Errorf("implausible ratio %+v", x)
					}
				}
			}
		})
	}
}

// starved reports whether a run completed no message without any error.
func starved(rep loadgen.Report) bool {
	for _, r := range rep.Runs {
		if r.Msgs == 0 && r.Errors == 0 {
			return true
		}
	}
	return false
}

func TestBenchIdle(t *testing.T) {
	stdout, stderr, code := runBench(t, "idle", "--conns", "50", "--duration", "100ms", "--json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout)
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Idle == nil {
		t.Fatalf("want one idle run, got %+v", rep.Runs)
	}
	ir := rep.Runs[0].Idle
	if ir.Conns != 50 || ir.Held != 50 || ir.Verified != 50 || ir.Errors != 0 {
		t.Errorf("idle %+v, want 50 held and verified, no errors", ir)
	}
	if ir.RSSBeforeBytes == 0 || ir.RSSAfterBytes == 0 || ir.GoBytesPerConn == nil {
		t.Errorf("idle memory not measured: %+v", ir)
	}
	if rep.FileLimit.Soft == 0 || rep.FileLimit.Soft < rep.FileLimit.SoftBefore {
		t.Errorf("file limit %+v", rep.FileLimit)
	}
}

// TestBenchTextAndChart: the tables on stdout and an SVG chart of a sweep.
func TestBenchTextAndChart(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "chart.svg")
	stdout, stderr, code := runBench(t, "echo", "--sweep", "1,2", "--duration", "200ms", "--warmup", "0s", "--baseline", "--chart", svg, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"msgs/s", "msgs/CPU-s", "p99.9", "hub", "relay", "direct", "plain", "hub ÷ baseline"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "<svg") || !strings.HasSuffix(strings.TrimSpace(s), "</svg>") || strings.Count(s, "<polyline") != 12 {
		t.Errorf("chart is not the expected SVG (%d polylines):\n%.300s", strings.Count(s, "<polyline"), s)
	}
}

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", nil, "want one SCENARIO"},
		{"unknown scenario", []string{"nope"}, `unknown scenario "nope"`},
		{"two scenarios", []string{"echo", "forward"}, "want one SCENARIO"},
		{"zero clients", []string{"echo", "--clients", "0"}, "--clients must be at least 1"},
		{"negative clients", []string{"echo", "--clients", "-3"}, "--clients must be at least 1"},
		{"zero inflight", []string{"echo", "--inflight", "0"}, "--inflight must be at least 1"},
		{"zero duration", []string{"echo", "--duration", "0s"}, "--duration must be positive"},
		{"negative duration", []string{"forward", "--duration", "-1s"}, "--duration must be positive"},
		{"negative warmup", []string{"echo", "--warmup", "-1s"}, "--warmup must not be negative"},
		{"size above a frame", []string{"bulk", "--size", "65535"}, "does not fit in a frame"},
		{"size below the stamp", []string{"echo", "--size", "4"}, "--size must be at least 8"},
		{"secure size", []string{"secure", "--size", "65400"}, "does not fit in a frame"},
		{"zero conns", []string{"idle", "--conns", "0"}, "--conns must be at least 1"},
		{"bad sweep", []string{"echo", "--sweep", "1,0"}, "bad --sweep"},
		{"sweep and clients", []string{"echo", "--sweep", "1,2", "--clients", "3"}, "exclude each other"},
		{"spawn and hub", []string{"echo", "--spawn", "--hub", "127.0.0.1:4000"}, "exclude each other"},
		{"bad hub", []string{"echo", "--hub", "nowhere"}, "bad --hub"},
		{"hub-pid alone", []string{"echo", "--hub-pid", "1"}, "--hub-pid needs --hub"},
		{"reply on echo", []string{"echo", "--reply"}, "--reply is for forward and bulk"},
		{"idle baseline", []string{"idle", "--baseline"}, "no baseline"},
		{"bad client", []string{"echo", "--client", "fast"}, "--client must be raw, node or both"},
		{"conns on echo", []string{"echo", "--conns", "5"}, "for the idle scenario"},
		{"unknown flag", []string{"echo", "--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runBench(t, tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

// TestBenchInterrupted: a cancelled context ends the command promptly.
func TestBenchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	errBuf := &scBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, []string{"bench", "forward", "--duration", "1m", "--log-level", "warn"}, &out, errBuf)
	}()
	time.Sleep(500 * time.Millisecond) // setting up or running
	cancel()
	if code := <-done; code != 1 || !strings.Contains(errBuf.String(), "interrupted") {
		t.Errorf("exit %d, want 1 with \"interrupted\"; stderr:\n%s", code, errBuf.String())
	}
}
