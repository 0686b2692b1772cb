package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/pgtest"
)

// testPassword is put in the database URL (trust authentication ignores
// it) to check that it never shows in logs, output or /metrics.
const testPassword = "pw-must-not-leak-7f3a"

// withPassword returns dsn with testPassword as its password.
func withPassword(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), testPassword)
	return u.String()
}

// pgBuffer collects a process's output safely.
type pgBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *pgBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *pgBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// pgServeProc is a running "ockamhub serve" binary.
type pgServeProc struct {
	cmd    *exec.Cmd
	url    string
	output *pgBuffer // stdout and stderr
	done   chan error
}

// startPGServe runs the ockamhub binary's serve with args (after
// --http 127.0.0.1:0) and waits for its "listening on" line.
func startPGServe(t *testing.T, args ...string) *pgServeProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--http", "127.0.0.1:0", "--log-format", "text", "--log-level", "debug"}, args...)...)
	p := &pgServeProc{cmd: cmd, output: &pgBuffer{}, done: make(chan error, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.output.Write([]byte(sc.Text() + "\n"))
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case first <- u:
				default:
				}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		p.done <- nil
		t.Logf("serve output:\n%s", p.output)
	})
	select {
	case p.url = <-first:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited (%v) before listening:\n%s", err, p.output)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not print its address within 30 s:\n%s", p.output)
	}
	return p
}

// stop sends SIGTERM and checks that serve exits 0.
func (p *pgServeProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("serve exited with %v, want 0:\n%s", err, p.output)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20 s of SIGTERM:\n%s", p.output)
	}
}

func pgFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func pgNodePorts() string {
	first := 20000 + rand.IntN(10000)
	return fmt.Sprintf("%d-%d", first, first+9)
}

func pgClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// pgCall makes a request and returns the status and body.
func pgCall(t *testing.T, c *http.Client, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pgSignIn uses the development sign-in (serve listens on loopback).
func pgSignIn(t *testing.T, c *http.Client, base, user string) {
	t.Helper()
	resp, err := c.PostForm(base+"/auth/local", url.Values{"username": {user}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/dashboard" {
		t.Fatalf("sign in: got %s at %s, want 200 at /dashboard", resp.Status, resp.Request.URL)
	}
}

type pgNode struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Port    int    `json:"port"`
	Address string `json:"address"`
	Status  string `json:"status"`
}

func pgCreateNode(t *testing.T, c *http.Client, base, name string) pgNode {
	t.Helper()
	code, body := pgCall(t, c, "POST", base+"/api/v1/nodes", `{"name":"`+name+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("create %s: got %d, want 201\n%s", name, code, body)
	}
	var n pgNode
	if err := json.Unmarshal([]byte(body), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func pgListNodes(t *testing.T, c *http.Client, base string) []pgNode {
	t.Helper()
	code, body := pgCall(t, c, "GET", base+"/api/v1/nodes", "")
	if code != http.StatusOK {
		t.Fatalf("list nodes: got %d, want 200\n%s", code, body)
	}
	var out struct{ Nodes []pgNode }
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out.Nodes
}

// pgEcho sends hello to the echo_service of the node at addr and
// checks the reply.
func pgEcho(t *testing.T, addr string) { t.Helper(); hubtest.Echo(t, addr) }

// pgPoll calls f every 100 ms until it returns true or the deadline passes.
func pgPoll(t *testing.T, what string, within time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pgGet(t *testing.T, u string) (int, string) {
	t.Helper()
	return pgCall(t, pgClient(), "GET", u, "")
}

// TestServePostgresRestart runs serve on PostgreSQL, signs in, creates a
// node and echoes through it; after a restart of the process the node is
// back on the same port. The URL's password appears nowhere in the
// output or /metrics.
func TestServePostgresRestart(t *testing.T) {
	dsn := withPassword(t, pgtest.NewDatabase(t))
	ports, maddr := pgNodePorts(), pgFreeAddr(t)
	args := []string{"--db", dsn, "--node-ports", ports, "--metrics", maddr}
	p := startPGServe(t, args...)
	c := pgClient()
	pgSignIn(t, c, p.url, "alice")
	n := pgCreateNode(t, c, p.url, "demo")
	pgPoll(t, "node running", 10*time.Second, func() bool { return pgListNodes(t, c, p.url)[0].Status == "running" })
	pgEcho(t, n.Address)
	_, metrics := pgGet(t, "http://"+maddr+"/metrics")
	p.stop(t)

	p2 := startPGServe(t, args...)
	c2 := pgClient()
	pgSignIn(t, c2, p2.url, "alice")
	var ns []pgNode
	pgPoll(t, "restored node running", 10*time.Second, func() bool {
		ns = pgListNodes(t, c2, p2.url)
		return len(ns) == 1 && ns[0].Status == "running"
	})
	if ns[0].ID != n.ID || ns[0].Port != n.Port || ns[0].Name != "demo" {
		t.Fatalf("after restart: got %+v, want %+v", ns[0], n)
	}
	pgEcho(t, n.Address)
	if code, body := pgGet(t, "http://"+maddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: got %d %q, want 200", code, body)
	}
	p2.stop(t)
	for what, text := range map[string]string{"first run's output": p.output.String(), "second run's output": p2.output.String(), "/metrics": metrics} {
		if strings.Contains(text, testPassword) {
			t.Errorf("the database password appears in %s", what)
		}
	}
	if !strings.Contains(p.output.String(), "postgres:xxxxx@") {
		t.Errorf("serve did not log the (redacted) database URL:\n%s", p.output)
	}
}

// TestServePostgresOutage stops PostgreSQL under a running serve: API
// requests get 503 with a JSON error, /readyz is not ready, the running
// node keeps echoing and the process keeps running; when PostgreSQL is
// back, everything recovers by itself.
func TestServePostgresOutage(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	dsn := withPassword(t, cluster.NewDatabase(t))
	maddr := pgFreeAddr(t)
	p := startPGServe(t, "--db", dsn, "--node-ports", pgNodePorts(), "--metrics", maddr, "--max-nodes-per-user", "2")
	c := pgClient()
	pgSignIn(t, c, p.url, "alice")
	n := pgCreateNode(t, c, p.url, "demo")
	pgPoll(t, "node running", 10*time.Second, func() bool { return pgListNodes(t, c, p.url)[0].Status == "running" })
	pgEcho(t, n.Address)

	cluster.Stop(t)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/v1/nodes", ""},
		{"GET", fmt.Sprintf("/api/v1/nodes/%d", n.ID), ""},
		{"POST", "/api/v1/nodes", `{"name":"second"}`},
	} {
		code, body := pgCall(t, c, req.method, p.url+req.path, req.body)
		var e struct{ Error string }
		if code != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, "database is unavailable") {
			t.Errorf("%s %s with PostgreSQL stopped: got %d %q, want 503 with a JSON error about the database", req.method, req.path, code, body)
		}
	}
	if code, body := pgCall(t, c, "GET", p.url+"/dashboard", ""); code != http.StatusServiceUnavailable {
		t.Errorf("GET /dashboard with PostgreSQL stopped: got %d, want 503\n%s", code, body)
	}
	if code, body := pgGet(t, "http://"+maddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "database unavailable") {
		t.Errorf("/readyz with PostgreSQL stopped: got %d %q, want 503 database unavailable", code, body)
	}
	if code, _ := pgGet(t, "http://"+maddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with PostgreSQL stopped: got %d, want 200", code)
	}
	pgEcho(t, n.Address)
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("serve exited while PostgreSQL was down: %v", err)
	default:
	}

	cluster.Start(t)
	pgPoll(t, "/readyz ready after PostgreSQL is back", 30*time.Second, func() bool {
		code, _ := pgGet(t, "http://"+maddr+"/readyz")
		return code == http.StatusOK
	})
	pgPoll(t, "API answers after PostgreSQL is back", 30*time.Second, func() bool {
		code, _ := pgCall(t, c, "GET", p.url+"/api/v1/nodes", "")
		return code == http.StatusOK
	})
	second := pgCreateNode(t, c, p.url, "second") // the same session cookie still works
	pgPoll(t, "second node running", 10*time.Second, func() bool {
		for _, x := range pgListNodes(t, c, p.url) {
			if x.ID == second.ID && x.Status == "running" {
				return true
			}
		}
		return false
	})
	pgEcho(t, second.Address)
	pgEcho(t, n.Address)
	p.stop(t)
	if strings.Contains(p.output.String(), testPassword) {
		t.Errorf("the database password appears in serve's output")
	}
}
