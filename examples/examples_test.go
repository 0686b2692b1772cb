package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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

// programs are the example directories, each a main package.
var programs = []string{
	"01-node",
	"02-worker",
	"03-routing",
	"04-routing-many-hops",
	"07-routing-over-transport-initiator",
	"07-routing-over-transport-responder",
	"08-routing-over-transport-many-hops-initiator",
	"08-routing-over-transport-many-hops-middle",
	"08-routing-over-transport-many-hops-responder",
	"10-routing-to-hub",
	"11-forwarding-through-hub-initiator",
	"11-forwarding-through-hub-responder",
	"step-2-client",
	"step-2-server",
	"step-3-hub-echo",
	"step-4-receiver",
	"step-4-sender",
}

const (
	clientTimeout = 20 * time.Second // one client run
	lineTimeout   = 20 * time.Second // waiting for one line from a server
	stopTimeout   = 10 * time.Second // a server's exit after SIGINT
	buildTimeout  = 5 * time.Minute
)

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ockamhub-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bin returns the path of the named example's binary. The first call builds
// every example, once, with one go build run from the module root.
func bin(t *testing.T, name string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipping: the go command is not on PATH, and these tests build the examples with it")
	}
	buildOnce.Do(func() { buildErr = buildAll(goTool) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func buildAll(goTool string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	// With -o naming a directory, go build writes each main package's
	// binary there under its directory name: binDir/NAME.
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	for _, p := range programs {
		args = append(args, "./examples/"+p)
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// lines splits output into lines, without the final newline.
func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// runClient runs an example that exits by itself and returns its stdout
// lines; it fails the test if the program fails.
func runClient(t *testing.T, name string, args ...string) []string {
	t.Helper()
	out, errOut, err := runProgram(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return lines(out)
}

// runProgram runs an example that exits by itself.
func runProgram(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := bin(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// expectLines compares a program's output lines with the expected ones.
func expectLines(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s printed:\n\t%s\nwant:\n\t%s", name, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running example that runs until interrupted.
type server struct {
	name   string
	cmd    *exec.Cmd
	out    chan string // stdout lines, closed at the end of stdout
	seen   []string    // lines read so far
	stderr lockedBuffer
	ready  bool // it printed what it prints once it is up

	waitOnce sync.Once
	waitErr  error
}

// wait waits for the process to exit; call it only once stdout is at EOF.
func (s *server) wait() error {
	s.waitOnce.Do(func() { s.waitErr = s.cmd.Wait() })
	return s.waitErr
}

// startServer starts a long-running example. At cleanup it is interrupted,
// as with Ctrl-C, and must exit cleanly; it is killed if it does not exit.
func startServer(t *testing.T, name string, args ...string) *server {
	t.Helper()
	s := &server{name: name, out: make(chan string, 64)}
	s.cmd = exec.Command(bin(t, name), args...)
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		defer close(s.out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.out <- sc.Text()
		}
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop interrupts the server and waits for it to exit.
func (s *server) stop(t *testing.T) {
	s.cmd.Process.Signal(os.Interrupt)
	exited := make(chan error, 1)
	go func() {
		for line := range s.out { // read to EOF before Wait
			s.seen = append(s.seen, line)
		}
		exited <- s.wait()
	}()
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case err := <-exited:
		// A server that got as far as being ready must handle SIGINT.
		if err != nil && s.ready {
			t.Errorf("%s did not exit cleanly on SIGINT: %v\n%s", s.name, err, s.output())
		}
	case <-timer.C:
		s.cmd.Process.Kill()
		<-exited
		t.Errorf("%s did not exit within %v of SIGINT; killed it\n%s", s.name, stopTimeout, s.output())
	}
}

func (s *server) output() string {
	return fmt.Sprintf("stdout:\n\t%s\nstderr:\n%s", strings.Join(s.seen, "\n\t"), s.stderr.String())
}

// waitFor reads the server's output until a line that starts with prefix,
// and returns that line.
func (s *server) waitFor(t *testing.T, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), lineTimeout)
	defer cancel()
	for {
		select {
		case line, ok := <-s.out:
			if !ok {
				err := s.wait()
				t.Fatalf("%s ended (%v) before printing %q\n%s", s.name, err, prefix, s.output())
			}
			s.seen = append(s.seen, line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-ctx.Done():
			t.Fatalf("%s printed no %q line within %v\n%s", s.name, prefix, lineTimeout, s.output())
		}
	}
}

// waitListening waits for the server's "listening on IP:PORT" line and
// returns IP:PORT.
func (s *server) waitListening(t *testing.T) string {
	t.Helper()
	addr := strings.TrimPrefix(s.waitFor(t, "listening on "), "listening on ")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("%s: bad listening address %q (%v)", s.name, addr, err)
	}
	s.ready = true
	return addr
}

// forwardingAlias checks a "forwarding address: ROUTE" line printed by a
// program registered with the hub at hubAddr and returns the forwarder's
// address on the hub.
func forwardingAlias(t *testing.T, line, hubAddr string) string {
	t.Helper()
	route, err := routing.ParseRoute(strings.TrimPrefix(line, "forwarding address: "))
	if err != nil {
		t.Fatalf("bad forwarding address line %q: %v", line, err)
	}
	if len(route) != 2 || route[0] != routing.TCPAddress(hubAddr) || !route[1].IsLocal() || len(route[1].Value) != 16 {
		t.Fatalf("forwarding address %s: want 1#%s => 0#<16 hex>", route, hubAddr)
	}
	return route[1].Value
}

func TestLocalExamples(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"01-node", []string{"node started", "node stopped"}},
		{"02-worker", []string{
			"Address: 0#echoer, Received: Hello Ockam!",
			"App Received: Hello Ockam!",
		}},
		{"03-routing", []string{
			"Address: 0#h1, Received: onward 0#h1 => 0#echoer, return 0#app",
			"Address: 0#echoer, Received: Hello Ockam!",
			"Address: 0#h1, Received: onward 0#h1 => 0#app, return 0#echoer",
			"App Received: Hello Ockam!",
		}},
		{"04-routing-many-hops", []string{
			"Address: 0#h1, Received: onward 0#h1 => 0#h2 => 0#h3 => 0#echoer, return 0#app",
			"Address: 0#h2, Received: onward 0#h2 => 0#h3 => 0#echoer, return 0#h1 => 0#app",
			"Address: 0#h3, Received: onward 0#h3 => 0#echoer, return 0#h2 => 0#h1 => 0#app",
			"Address: 0#echoer, Received: Hello Ockam!",
			"Address: 0#h3, Received: onward 0#h3 => 0#h2 => 0#h1 => 0#app, return 0#echoer",
			"Address: 0#h2, Received: onward 0#h2 => 0#h1 => 0#app, return 0#h3 => 0#echoer",
			"Address: 0#h1, Received: onward 0#h1 => 0#app, return 0#h2 => 0#h3 => 0#echoer",
			"App Received: Hello Ockam!",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expectLines(t, tt.name, runClient(t, tt.name), tt.want)
		})
	}
}

func TestStep2ClientServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "step-2-server", "-listen", "127.0.0.1:0")
	addr := srv.waitListening(t)

	got := runClient(t, "step-2-client", "-server", addr)
	expectLines(t, "step-2-client", got, []string{"Received return message: 'Hello you over there!'"})
	srv.waitFor(t, "Responder: Hello you over there!")
}

func TestStep3HubEcho(t *testing.T) {
	t.Parallel()
	_, hubAddr := hubtest.Start(t, hub.Config{})
	got := runClient(t, "step-3-hub-echo", "-hub", hubAddr)
	expectLines(t, "step-3-hub-echo", got, []string{"Echo says: Hello you over there!"})
}

func TestStep4Forwarding(t *testing.T) {
	t.Parallel()
	_, hubAddr := hubtest.Start(t, hub.Config{})
	rcv := startServer(t, "step-4-receiver", "-hub", hubAddr)
	alias := forwardingAlias(t, rcv.waitFor(t, "forwarding address: "), hubAddr)
	rcv.ready = true

	got := runClient(t, "step-4-sender", "-hub", hubAddr, "-forwarder", alias)
	expectLines(t, "step-4-sender", got, []string{"Echo message: This message goes via Hub"})
	rcv.waitFor(t, "Echoing message: This message goes via Hub")

	// The full form of the address works too.
	got = runClient(t, "step-4-sender", "-hub", hubAddr, "-forwarder", "0#"+alias)
	expectLines(t, "step-4-sender", got, []string{"Echo message: This message goes via Hub"})
}

func TestRoutingOverTransport(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "07-routing-over-transport-responder", "-listen", "127.0.0.1:0")
	addr := srv.waitListening(t)

	got := runClient(t, "07-routing-over-transport-initiator", "-responder", addr)
	expectLines(t, "07-routing-over-transport-initiator", got, []string{"App Received: Hello Ockam!"})
	srv.waitFor(t, "Address: 0#echoer, Received: Hello Ockam!")
}

func TestRoutingOverTransportManyHops(t *testing.T) {
	t.Parallel()
	resp := startServer(t, "08-routing-over-transport-many-hops-responder", "-listen", "127.0.0.1:0")
	respAddr := resp.waitListening(t)
	mid := startServer(t, "08-routing-over-transport-many-hops-middle", "-listen", "127.0.0.1:0", "-responder", respAddr)
	midAddr := mid.waitListening(t)

	got := runClient(t, "08-routing-over-transport-many-hops-initiator", "-middle", midAddr, "-responder", respAddr)
	expectLines(t, "08-routing-over-transport-many-hops-initiator", got, []string{"App Received: Hello Ockam!"})
	resp.waitFor(t, "Address: 0#echoer, Received: Hello Ockam!")
}

func TestRoutingToHub(t *testing.T) {
	t.Parallel()
	_, hubAddr := hubtest.Start(t, hub.Config{})
	got := runClient(t, "10-routing-to-hub", "-hub", hubAddr)
	expectLines(t, "10-routing-to-hub", got, []string{"App Received: Hello Ockam!"})
}

func TestForwardingThroughHub(t *testing.T) {
	t.Parallel()
	_, hubAddr := hubtest.Start(t, hub.Config{})
	resp := startServer(t, "11-forwarding-through-hub-responder", "-hub", hubAddr)
	alias := strings.TrimPrefix(resp.waitFor(t, "Forwarding address for echo_service: "), "Forwarding address for echo_service: ")
	if got := forwardingAlias(t, resp.waitFor(t, "forwarding address: "), hubAddr); got != alias {
		t.Fatalf("forwarding route ends in %q, but the responder printed forwarding address %q", got, alias)
	}
	resp.ready = true

	got := runClient(t, "11-forwarding-through-hub-initiator", "-hub", hubAddr, "-forwarder", alias)
	expectLines(t, "11-forwarding-through-hub-initiator", got, []string{"App Received: Hello Ockam!"})
	resp.waitFor(t, "Address: 0#echo_service, Received: Hello Ockam!")
}

func TestClientErrors(t *testing.T) {
	t.Parallel()

	t.Run("no server", func(t *testing.T) {
		t.Parallel()
		// A port that was just free: nothing listens there.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		out, errOut, err := runProgram(t, "step-2-client", "-server", addr)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || out != "" || !strings.Contains(errOut, addr) {
			t.Errorf("step-2-client with no server: err %v, stdout %q, stderr %q; want exit status 1 and an error naming %s", err, out, errOut, addr)
		}
	})

	t.Run("missing flag", func(t *testing.T) {
		t.Parallel()
		out, errOut, err := runProgram(t, "11-forwarding-through-hub-initiator")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || out != "" || !strings.Contains(errOut, "-forwarder") {
			t.Errorf("11-forwarding-through-hub-initiator without -forwarder: err %v, stdout %q, stderr %q; want exit status 2 and usage", err, out, errOut)
		}
	})
}
