package loadgen_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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
