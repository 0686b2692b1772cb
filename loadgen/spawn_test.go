package loadgen_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/loadgen"
)

// TestHelperChild is not a test: run by TestStartChild as the child, it
// listens and says so, like `ockamhub node`, then waits to be killed.
func TestHelperChild(t *testing.T) {
	if os.Getenv("LOADGEN_HELPER_CHILD") != "1" {
		t.Skip("helper process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestStartChild(t *testing.T) {
	t.Setenv("LOADGEN_HELPER_CHILD", "1")
	for _, how := range []string{"Close", "ctx"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c, err := loadgen.StartChild(ctx, nil, os.Args[0], "-test.run=^TestHelperChild$")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := net.SplitHostPort(c.Addr); err != nil {
				t.Errorf("Addr = %q: %v", c.Addr, err)
			}
			if _, err := c.Process.RSS(); err != nil {
				t.Errorf("RSS: %v", err)
			}
			if _, err := c.Process.CPU(); err != nil {
				t.Errorf("CPU: %v", err)
			}
			pid := c.Process.PID()
			if how == "Close" {
				c.Close()
			} else {
				cancel()
			}
			deadline := time.Now().Add(10 * time.Second)
			for !c.Exited() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !c.Exited() {
				t.Fatalf("child %d still running", pid)
			}
			c.Close()
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("kill(%d, 0) = %v, want ESRCH", pid, err)
			}
		})
	}
}

func TestStartChildThatDoesNotListen(t *testing.T) {
	_, err := loadgen.StartChild(t.Context(), nil, "/bin/true")
	if err == nil {
		t.Fatal("StartChild: no error")
	}
}

func TestSelfProcess(t *testing.T) {
	p := loadgen.Self()
	if rss, err := p.RSS(); err != nil || rss == 0 {
		t.Errorf("RSS = %d, %v", rss, err)
	}
	if _, err := p.CPU(); err != nil {
		t.Errorf("CPU: %v", err)
	}
	if m := loadgen.ThisMachine(); m.NumCPU < 1 || m.GoVersion == "" {
		t.Errorf("ThisMachine = %+v", m)
	}
}

// TestHelperBaseline is not a test: run by TestRunSpawnedBaselines as a
// child, it serves the baseline server named by LOADGEN_HELPER_BASELINE as
// `ockamhub bench --serve-baseline` does.
func TestHelperBaseline(t *testing.T) {
	kind := os.Getenv("LOADGEN_HELPER_BASELINE")
	if kind == "" {
		t.Skip("helper process")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	loadgen.ServeBaseline(ctx, loadgen.ServerKind(kind), ln)
	os.Exit(0)
}

// TestRunSpawnedBaselines runs the baselines' servers as child processes,
// as `ockamhub bench --spawn --baseline` does, and checks that their CPU
// and memory are reported.
func TestRunSpawnedBaselines(t *testing.T) {
	start := func(ctx context.Context, kind loadgen.ServerKind) (*loadgen.Child, error) {
		os.Setenv("LOADGEN_HELPER_BASELINE", string(kind))
		defer os.Unsetenv("LOADGEN_HELPER_BASELINE")
		// Under -race a process waits a second before it exits.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
		defer os.Unsetenv("GORACE")
		return loadgen.StartChild(ctx, nil, os.Args[0], "-test.run=^TestHelperBaseline$")
	}
	for _, sc := range []loadgen.Scenario{loadgen.Echo, loadgen.Forward} {
		for _, target := range loadgen.Baselines {
			t.Run(string(sc)+"/"+string(target), func(t *testing.T) {
				// As in TestRunBaselines: a machine starved of CPU may
				// complete nothing in a short window (seen under -race on
				// a loaded machine: echo/direct, msgs 0), so an empty
				// window is measured again, longer.
				var res *loadgen.Result
				for d := 150 * time.Millisecond; ; d *= 4 {
					var err error
					res, err = loadgen.Run(t.Context(), loadgen.Config{
						Scenario: sc, Target: target, Clients: 2, Inflight: 4,
						Duration: d, StartServer: start,
					})
					if err != nil {
						t.Fatal(err)
					}
					if res.Msgs > 0 || d >= 2*time.Second {
						break
					}
					t.Logf("nothing completed in %v; measuring again for longer", d)
				}
				if res.Msgs == 0 || res.Errors != 0 {
					t.Errorf("msgs %d, errors %d", res.Msgs, res.Errors)
				}
				// Direct forward has no server: sender and receiver meet.
				hasServer := sc == loadgen.Echo || target != loadgen.TargetDirect
				if got := res.ServerRSSBytes != nil && res.ServerCPUPercent != nil; got != hasServer {
					t.Errorf("server figures reported: %v, want %v", got, hasServer)
				}
				if hasServer && *res.ServerCPUPercent > 0 && (res.MsgsPerServerCPUSec == nil || *res.MsgsPerServerCPUSec <= 0) {
					t.Errorf("no msgs per server CPU-second with %.1f%% server CPU", *res.ServerCPUPercent)
				}
			})
		}
	}
}
