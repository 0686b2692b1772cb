package examples_test

// Tests of the secure channel examples (05, 06, 09, 12). Every top-level
// name here starts with "sc", so that this file never clashes with the
// helpers of the other example tests in this package.

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/routing"
)

// scPrograms are the secure channel examples, each a main package.
var scPrograms = []string{
	"05-secure-channel",
	"06-secure-channel-many-hops",
	"09-secure-channel-over-many-transport-hops-initiator",
	"09-secure-channel-over-many-transport-hops-middle",
	"09-secure-channel-over-many-transport-hops-responder",
	"12-secure-channel-hub-forwarding-initiator",
	"12-secure-channel-hub-forwarding-responder",
}

const (
	scRunTimeout  = 30 * time.Second // one run of a program that exits by itself
	scLineTimeout = 30 * time.Second // waiting for one line of a server
	scStopTimeout = 10 * time.Second // a server's exit after SIGINT
)

// scBuild builds every secure channel example into a temporary directory,
// with one go build run from the module root, and returns the directory.
func scBuild(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipping: the go command is not on PATH, and these tests build the examples with it")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range scPrograms {
		args = append(args, "./examples/"+p)
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// scRun runs a program that exits by itself and returns its stdout lines.
func scRun(t *testing.T, dir, name string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), scRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, name), args...)
	var stdout, stderr scLockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
}

type scLockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *scLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *scLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// scServer is a running program that serves until interrupted.
type scServer struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, closed at EOF
	seen   []string
	stderr scLockedBuffer
	done   chan error // the exit status, once stdout is drained
}

// scStart starts a long-running program. At cleanup it is sent SIGINT and
// must exit cleanly; it is killed if it does not exit in time.
func scStart(t *testing.T, dir, name string, args ...string) *scServer {
	t.Helper()
	s := &scServer{name: name, lines: make(chan string, 64), done: make(chan error, 1)}
	s.cmd = exec.Command(filepath.Join(dir, name), args...)
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *scServer) stop(t *testing.T) {
	s.cmd.Process.Signal(os.Interrupt)
	go func() {
		for line := range s.lines {
			s.seen = append(s.seen, line)
		}
		s.done <- s.cmd.Wait()
	}()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("%s did not exit cleanly on SIGINT: %v\n%s", s.name, err, s.output())
		}
	case <-time.After(scStopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("%s did not exit within %v of SIGINT; killed it\n%s", s.name, scStopTimeout, s.output())
	}
}

func (s *scServer) output() string {
	return "stdout:\n\t" + strings.Join(s.seen, "\n\t") + "\nstderr:\n" + s.stderr.String()
}

// waitFor reads the server's stdout up to a line starting with prefix and
// returns the rest of that line.
func (s *scServer) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	timer := time.NewTimer(scLineTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("%s ended before printing %q\n%s", s.name, prefix, s.output())
			}
			s.seen = append(s.seen, line)
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-timer.C:
			t.Fatalf("%s printed no %q line within %v\n%s", s.name, prefix, scLineTimeout, s.output())
		}
	}
}

// waitListening waits for "listening on IP:PORT" and returns IP:PORT.
func (s *scServer) waitListening(t *testing.T) string {
	t.Helper()
	addr := s.waitFor(t, "listening on ")
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("%s: bad listening address %q (%v)", s.name, addr, err)
	}
	return addr
}

func scExpectLast(t *testing.T, name string, got []string, want string) {
	t.Helper()
	if len(got) == 0 || got[len(got)-1] != want {
		t.Errorf("%s printed:\n\t%s\nwant the last line %q", name, strings.Join(got, "\n\t"), want)
	}
}

func TestSecureChannelExamples(t *testing.T) {
	dir := scBuild(t)

	t.Run("05-secure-channel", func(t *testing.T) {
		got := scRun(t, dir, "05-secure-channel")
		want := []string{"Address: 0#echoer, Received: Hello Ockam!", "App Received: Hello Ockam!"}
		if !slices.Equal(got, want) {
			t.Errorf("printed:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	})

	t.Run("06-secure-channel-many-hops", func(t *testing.T) {
		got := scRun(t, dir, "06-secure-channel-many-hops")
		scExpectLast(t, "06", got, "App Received: Hello Ockam!")
		if !slices.Contains(got, "Address: 0#echoer, Received: Hello Ockam!") {
			t.Errorf("the echoer printed nothing:\n\t%s", strings.Join(got, "\n\t"))
		}
		// Each of the three hops relays M1, M2, M3, the request and the reply.
		hops := 0
		for _, l := range got {
			if strings.HasPrefix(l, "Address: 0#h") {
				hops++
			}
		}
		if hops != 15 {
			t.Errorf("the hops printed %d lines, want 15", hops)
		}
	})

	t.Run("09-secure-channel-over-many-transport-hops", func(t *testing.T) {
		responder := scStart(t, dir, "09-secure-channel-over-many-transport-hops-responder", "-listen", "127.0.0.1:0")
		id := responder.waitFor(t, "identity: ")
		rAddr := responder.waitListening(t)
		middle := scStart(t, dir, "09-secure-channel-over-many-transport-hops-middle", "-listen", "127.0.0.1:0", "-responder", rAddr)
		mAddr := middle.waitListening(t)
		got := scRun(t, dir, "09-secure-channel-over-many-transport-hops-initiator", "-middle", mAddr, "-responder", rAddr, "-peer", id)
		scExpectLast(t, "09 initiator", got, "App Received: Hello Ockam!")
		responder.waitFor(t, "Address: 0#echoer, Received: Hello Ockam!")
	})

	t.Run("12-secure-channel-hub-forwarding", func(t *testing.T) {
		_, hubAddr := hubtest.Start(t, hub.Config{})
		keyFile := filepath.Join(t.TempDir(), "responder.key")
		responder := scStart(t, dir, "12-secure-channel-hub-forwarding-responder", "-hub", hubAddr, "-key", keyFile)
		key := responder.waitFor(t, "identity: ")
		fwd := responder.waitFor(t, "forwarding address: ")
		route, err := routing.ParseRoute(fwd)
		if err != nil || len(route) != 2 || route[0] != routing.TCPAddress(hubAddr) || len(route[1].Value) != 16 {
			t.Fatalf("forwarding address %q (%v): want 1#%s => 0#<16 hex>", fwd, err, hubAddr)
		}
		alias := route[1].Value

		got := scRun(t, dir, "12-secure-channel-hub-forwarding-initiator", "-hub", hubAddr, "-forwarder", alias, "-peer", key)
		scExpectLast(t, "12 initiator", got, "App Received: Hello Ockam!")
		responder.waitFor(t, "Address: 0#echo_service, Received: Hello Ockam!")

		// Pinned to another key, the initiator refuses the responder.
		ctx, cancel := context.WithTimeout(t.Context(), scRunTimeout)
		defer cancel()
		other := strings.Repeat("ab", 32)
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "12-secure-channel-hub-forwarding-initiator"), "-hub", hubAddr, "-forwarder", alias, "-peer", other, "-timeout", "2s")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "not authorized") {
			t.Errorf("initiator pinned to another key: %v\n%s", err, out)
		}
	})
}
