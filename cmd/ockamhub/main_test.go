package main_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ockamhub-cmd")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "ockamhub")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running ockamhub process whose stdout is read line by line.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan error
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testWriter{t: t, prefix: args[0] + ": "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range p.lines {
		}
	})
	return p
}

// expect waits for a line matching re and returns its submatches.
func (p *proc) expect(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("process ended before printing %q", re)
			}
			if m := rx.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %q within 10s", re)
		}
	}
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(b), nil
}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func TestNodeSendForwarder(t *testing.T) {
	node := start(t, "node", "--listen", "127.0.0.1:0")
	addr := node.expect(t, `^listening on (127\.0\.0\.1:\d+)$`)[1]

	out, errs, code := run(t, "send", "--route", "1#"+addr+" => echo_service", "hello")
	if code != 0 || out != "hello\n" {
		t.Fatalf("send: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	fwd := start(t, "forwarder", "--hub", addr)
	route := fwd.expect(t, `^forwarding address: (1#`+regexp.QuoteMeta(addr)+` => 0#[0-9a-f]{16})$`)[1]
	for _, msg := range []string{"hi", "second message with spaces"} {
		out, errs, code = run(t, "send", "--route", route, msg)
		if code != 0 || out != msg+"\n" {
			t.Fatalf("send via forwarder: exit %d, stdout %q, stderr %q", code, out, errs)
		}
	}

	// SIGTERM shuts the node down gracefully: exit code 0.
	node.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-node.done:
		if err != nil {
			t.Fatalf("node exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("node did not exit after SIGTERM")
	}
	// The forwarder reconnects once a hub is back on the same address, and
	// prints its new forwarding address.
	node = start(t, "node", "--listen", addr)
	node.expect(t, `^listening on `)
	route2 := fwd.expect(t, `^forwarding address: (1#`+regexp.QuoteMeta(addr)+` => 0#[0-9a-f]{16})$`)[1]
	out, errs, code = run(t, "send", "--route", route2, "after restart")
	if code != 0 || out != "after restart\n" {
		t.Fatalf("send after hub restart: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	fwd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-fwd.done:
		if err != nil {
			t.Fatalf("forwarder exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("forwarder did not exit after SIGTERM")
	}
}

func TestSendErrors(t *testing.T) {
	// A port with nothing listening: find one by listening and closing.
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no route", []string{"send", "hello"}, 2, "--route is required"},
		{"bad route", []string{"send", "--route", "1#a#b", "x"}, 2, "bad --route"},
		{"no message", []string{"send", "--route", "1#127.0.0.1:1 => echo_service"}, 2, "MESSAGE"},
		{"local first hop", []string{"send", "--route", "echo_service", "x"}, 2, "must start with a TCP address"},
		{"refused", []string{"send", "--route", "1#127.0.0.1:1 => echo_service", "x"}, 1, "refused"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"send", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"route ending at the hop", []string{"send", "--route", "1#127.0.0.1:1", "x"}, 2, "name a worker after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.msg)
			}
			if lines := strings.Count(strings.TrimSpace(errs), "\n") + 1; tc.code == 1 && lines != 1 || tc.code == 2 && lines > 2 {
				t.Fatalf("error is not one line: %q", errs)
			}
		})
	}
}

func TestSendTimeout(t *testing.T) {
	node := start(t, "node", "--listen", "127.0.0.1:0")
	addr := node.expect(t, `^listening on (\S+)$`)[1]
	// nobody is not a worker: the hub drops the message, so no reply comes.
	_, errs, code := run(t, "send", "--timeout", "300ms", "--route", "1#"+addr+" => nobody", "x")
	if code != 1 || !strings.Contains(errs, "timed out after 300ms") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"node", "--help"}, {"send", "--help"}, {"forwarder", "--help"}} {
		out, errs, code := run(t, args...)
		if code != 0 || !strings.Contains(out+errs, "Usage") {
			t.Fatalf("%v: exit %d, output %q", args, code, out+errs)
		}
	}
	var _ io.Writer
}

func TestNodeMetrics(t *testing.T) {
	// Pick a free port for the metrics listener.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := l.Addr().String()
	l.Close()
	node := start(t, "node", "--listen", "127.0.0.1:0", "--metrics", maddr)
	addr := node.expect(t, `^listening on (\S+)$`)[1]
	fwd := start(t, "forwarder", "--hub", addr)
	fwd.expect(t, `^forwarding address: `)
	if out, _, code := run(t, "send", "--route", "1#"+addr+" => echo_service", "m"); code != 0 || out != "m\n" {
		t.Fatalf("send: %d %q", code, out)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`ockamhub_forwarders{node="main"} 1`, `ockamhub_frames_total{direction="in",node="main"}`, `ockamhub_connections{node="main"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/debug/pprof/"} {
		if code, _ := get(p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
}
