package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServeLimited runs "ockamhub serve" with default limits under a
// descriptor limit of nofile (soft and hard, set by the shell's ulimit),
// and returns its base URL and its stderr.
func startServeLimited(t *testing.T, nofile int, args ...string) (string, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), binary, "serve"}, args...)...)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case first <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-first:
		m := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:\d+)$`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("first line %q\nstderr:\n%s", line, stderr)
		}
		return m[1], stderr
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\nstderr:\n%s", stderr)
	}
	return "", nil
}

// createNode signs user in and creates a node named name; it returns the
// signed-in client and the node's port.
func createNode(t *testing.T, base, user, name string) (*http.Client, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.PostForm(base+"/auth/local", url.Values{"username": {user}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", base+"/api/v1/nodes", strings.NewReader(`{"name": "`+name+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n struct {
		Port int `json:"port"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&n); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating %s: %s, %v", name, resp.Status, err)
	}
	return c, n.Port
}

// echoRequest is a 2021 Rust client's frame for "Hello you over there!" to
// echo_service; the hub's reply has the same length.
var echoRequest = []byte("\x00\x2d\x01\x01\x00\x0cecho_service\x01\x00\x03app\x16\x15Hello you over there!")

// echo sends the echo request on c and checks the reply.
func echo(c net.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(echoRequest); err != nil {
		return err
	}
	reply := make([]byte, len(echoRequest))
	if _, err := io.ReadFull(c, reply); err != nil {
		return err
	}
	if !bytes.Contains(reply, []byte("Hello you over there!")) {
		return fmt.Errorf("reply %x", reply)
	}
	return nil
}

// flood opens n connections from the local IP src to addr, 32 at a time,
// and returns them open (the caller closes them).
func flood(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	var mu sync.Mutex
	var conns []net.Conn
	var failed int
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 32 {
		wg.Go(func() {
			for range next {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue // a full backlog: the flood goes on
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if failed > 0 {
		t.Logf("flood from %s: %d of %d dials failed, the first with %v", src, failed, n, firstErr)
	}
	return conns
}

// TestServeFlood reproduces issue 10, finding 2 (two processes held 19,980
// connections to one user's node; the process ran out of descriptors, the
// API and the other users' nodes stopped answering, and accept errors
// flooded the log) at a smaller scale: serve runs with its default limits
// under a descriptor limit of 3000, and thousands of connections flood one
// node, first from one address, then from ten. The API answers within a
// second, another user's node echoes, the flooded node's existing client
// keeps exchanging messages, and the refusals are counted, not logged one
// by one.
func TestServeFlood(t *testing.T) {
	first := 20000 + rand.IntN(10000)
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	ml.Close()
	base, stderr := startServeLimited(t, 3000, "--http", "127.0.0.1:0", "--data", t.TempDir(),
		"--node-ports", fmt.Sprintf("%d-%d", first, first+9), "--metrics", metrics)
	if !strings.Contains(stderr.String(), `"max_conns_per_node":494`) {
		t.Errorf("budget not derived from the descriptor limit 3000 (reserve 1024, total 1976, a quarter per node):\n%s", stderr)
	}
	alice, portA := createNode(t, base, "alice", "flooded")
	_, portB := createNode(t, base, "bob", "other")
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", portA), fmt.Sprintf("127.0.0.1:%d", portB)
	existing, err := net.Dial("tcp", addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer existing.Close()
	if err := echo(existing); err != nil {
		t.Fatal(err)
	}

	check := func(phase string) {
		t.Helper()
		start := time.Now()
		resp, err := alice.Get(base + "/api/v1/nodes")
		if err != nil {
			t.Fatalf("%s: API: %v", phase, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != 200 || took > time.Second {
			t.Errorf("%s: API answered %s in %v, want 200 within 1s", phase, resp.Status, took)
		}
		other, err := net.Dial("tcp", addrB)
		if err != nil {
			t.Fatalf("%s: other node: %v", phase, err)
		}
		defer other.Close()
		if err := echo(other); err != nil {
			t.Errorf("%s: other node does not echo: %v", phase, err)
		}
		for i := range 10 {
			if err := echo(existing); err != nil {
				t.Fatalf("%s: the flooded node's existing client, message %d: %v", phase, i, err)
			}
		}
	}

	floodStart := time.Now()
	held := flood(t, "127.0.0.1", addrA, 2500)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	check("flood from one address")
	for i := range 10 {
		held = append(held, flood(t, fmt.Sprintf("127.0.0.%d", 2+i), addrA, 250)...)
	}
	check("flood from ten addresses")
	elapsed := time.Since(floodStart)

	// Every connection the kernel accepted is, once the node has taken
	// it from the backlog, either held or refused.
	var perIP, nodeCap, conns int
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		value := func(series string) int {
			m := regexp.MustCompile(regexp.QuoteMeta(series) + ` (\d+)`).FindSubmatch(body)
			if m == nil {
				t.Fatalf("/metrics lacks %s", series)
			}
			var v int
			fmt.Sscan(string(m[1]), &v)
			return v
		}
		perIP = value(`ockamhub_connections_refused_total{node="flooded",reason="per_ip"}`)
		nodeCap = value(`ockamhub_connections_refused_total{node="flooded",reason="node_cap"}`)
		conns = value(`ockamhub_connections{node="flooded"}`)
		if perIP+nodeCap+conns >= len(held)+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a remote counter: no event to wait on
	}
	t.Logf("held %d connections open; the node admitted %d, refused %d (per IP) and %d (node cap) in %v", len(held), conns, perIP, nodeCap, elapsed)
	if perIP < 2000 || nodeCap < 1000 || conns > 494 {
		t.Errorf("per-IP refusals %d, node-cap refusals %d, connections %d: want most of the flood refused and at most 494 held", perIP, nodeCap, conns)
	}
	if n := strings.Count(stderr.String(), "too many open files"); n > 0 {
		t.Errorf("the process ran out of descriptors (%d log lines)", n)
	}
	// Refusals are logged a few times, then at most once a second.
	if n, most := strings.Count(stderr.String(), "connection refused"), 2*(5+int(elapsed/time.Second)+1); n > most {
		t.Errorf("%d log lines about refused connections in %v, want at most %d", n, elapsed, most)
	}
}

// TestServeHTTPFlood: the connection budget covered the nodes only. One
// address holding thousands of idle connections to the web port (each
// kept for ReadHeaderTimeout, then reopened) used every descriptor of
// the reserve meant for HTTP and the database: the API stopped answering
// other users and new connections to every node failed with "too many
// open files". Now the web port holds at most --max-http-conns-per-ip
// connections from one address and --max-http-conns in all, refusing
// the rest at once.
func TestServeHTTPFlood(t *testing.T) {
	first := 20000 + rand.IntN(10000)
	base, stderr := startServeLimited(t, 3000, "--http", "127.0.0.1:0", "--data", t.TempDir(),
		"--node-ports", fmt.Sprintf("%d-%d", first, first+9))
	alice, port := createNode(t, base, "alice", "web-flooded")
	httpAddr := strings.TrimPrefix(base, "http://")
	floodStart := time.Now()
	held := flood(t, "127.0.0.2", httpAddr, 3000)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	start := time.Now()
	resp, err := alice.Get(base + "/api/v1/nodes")
	if err != nil {
		t.Fatalf("API during an HTTP flood from another address: %v\nstderr:\n%.2000s", err, stderr)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	t.Logf("API answered in %v with %d connections from another address held or refused", took, len(held))
	if resp.StatusCode != 200 || took > time.Second {
		t.Errorf("API answered %s in %v during the flood, want 200 within 1s", resp.Status, took)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c); err != nil {
		t.Errorf("node does not echo during an HTTP flood: %v", err)
	}
	if n := strings.Count(stderr.String(), "too many open files"); n > 0 {
		t.Errorf("the process ran out of descriptors (%d log lines)", n)
	}
	if n, most := strings.Count(stderr.String(), "too many HTTP connections"), 3+int(time.Since(floodStart)/time.Second)+1; n == 0 || n > most {
		t.Errorf("%d log lines about refused HTTP connections, want 1 to %d", n, most)
	}
}

// TestServeFloodManyNodes: --max-conns-per-ip counts per node, so one
// address connecting to every node (here 8 nodes, 300 connections each)
// could hold the whole process budget (1976 under a limit of 3000), and
// then every node refused everyone. Now one address holds at most a
// quarter of the budget across all nodes: another address still gets in
// and echoes, and the flooding address's extra connections are refused as
// over the budget.
func TestServeFloodManyNodes(t *testing.T) {
	first := 20000 + rand.IntN(10000)
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	ml.Close()
	base, stderr := startServeLimited(t, 3000, "--http", "127.0.0.1:0", "--data", t.TempDir(),
		"--node-ports", fmt.Sprintf("%d-%d", first, first+9), "--metrics", metrics)
	if !strings.Contains(stderr.String(), `"max_conns_per_ip_all_nodes":494`) {
		t.Errorf("per-address share across nodes not a quarter of 1976:\n%s", stderr)
	}
	var addrs []string
	for i := range 8 {
		_, port := createNode(t, base, fmt.Sprint("user", i), fmt.Sprint("node", i))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, addr := range addrs {
		held = append(held, flood(t, "127.0.0.2", addr, 300)...)
	}
	// Every connection the kernel accepted is, once its node has taken it
	// from the backlog, held or refused; wait for that before checking.
	var budget, conns int
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		budget, conns = 0, 0
		for _, m := range regexp.MustCompile(`ockamhub_connections_refused_total\{node="node\d",reason="(budget|per_ip)"\} (\d+)`).FindAllSubmatch(body, -1) {
			var v int
			fmt.Sscan(string(m[2]), &v)
			if string(m[1]) == "budget" {
				budget += v
			}
			conns += v
		}
		for _, m := range regexp.MustCompile(`ockamhub_connections\{node="node\d"\} (\d+)`).FindAllSubmatch(body, -1) {
			var v int
			fmt.Sscan(string(m[1]), &v)
			conns += v
		}
		if conns >= len(held) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a remote counter: no event to wait on
	}
	t.Logf("held %d connections from one address to 8 nodes; %d refused as over the budget", len(held), budget)
	if budget < len(held)-494-8*44 {
		t.Errorf("%d refused as over the budget, want most of %d beyond the address's share of 494", budget, len(held))
	}
	for i, addr := range addrs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		err = echo(c)
		c.Close()
		if err != nil {
			t.Errorf("node %d does not echo for another address during the flood: %v", i, err)
		}
	}
}
