package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// childStopDelay is how long a child has to exit after SIGTERM before it
// is killed.
const childStopDelay = 3 * time.Second

// Child is a hub (`ockamhub node`) or a baseline server (`ockamhub bench
// --serve-baseline`) running as a child process, so that its CPU time and
// memory can be read apart from the load generator's. Create one with
// StartChild; its methods are safe for concurrent use.
type Child struct {
	// Addr is the HOST:PORT the child printed in its "listening on" line.
	Addr string
	// Process is the child's process.
	Process *Process

	cmd     *exec.Cmd
	waited  chan struct{}
	waitErr error
	once    sync.Once
}

var listeningLine = regexp.MustCompile(`listening on (\S+)`)

// StartChild runs the program name with args, which must print "listening
// on HOST:PORT" on its standard output once it accepts connections (as
// `ockamhub node --listen 127.0.0.1:0` does), and returns when it has. The
// child's standard error goes to stderr (nil discards it).
//
// The child never outlives the load generator: it is killed when ctx ends
// (SIGTERM, then SIGKILL after a grace period), when Close is called, and
// on Linux when the load generator dies (Pdeathsig).
func StartChild(ctx context.Context, stderr io.Writer, name string, args ...string) (*Child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = childStopDelay
	cmd.SysProcAttr = childAttr()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: starting the hub: %w", err)
	}
	c := &Child{cmd: cmd, waited: make(chan struct{}), Process: PID(cmd.Process.Pid)}
	addr := make(chan string, 1)
	go func() {
		// Read the whole output, so that the child never blocks on a full
		// pipe; Wait closes the pipe.
		s := bufio.NewScanner(out)
		found := false
		for s.Scan() {
			if m := listeningLine.FindStringSubmatch(s.Text()); m != nil && !found {
				found = true
				addr <- m[1]
			}
		}
		close(addr)
	}()
	go func() {
		c.waitErr = cmd.Wait()
		close(c.waited)
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case a, ok := <-addr:
		if ok {
			c.Addr = a
			return c, nil
		}
		c.Close()
		return nil, fmt.Errorf("loadgen: the hub exited without listening: %v", c.waitErr)
	case <-timer.C:
		c.Close()
		return nil, errors.New("loadgen: the hub did not print \"listening on\" within 10s")
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// Close stops the child: SIGTERM, then SIGKILL if it has not exited within
// a few seconds. It waits for the child and is idempotent.
func (c *Child) Close() error {
	c.once.Do(func() {
		select {
		case <-c.waited:
			return
		default:
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(childStopDelay)
		defer t.Stop()
		select {
		case <-c.waited:
		case <-t.C:
			c.cmd.Process.Kill()
			<-c.waited
		}
	})
	return nil
}

// Exited reports whether the child has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.waited:
		return true
	default:
		return false
	}
}
