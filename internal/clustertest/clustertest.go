// Package clustertest starts a cluster of real "ockamhub serve" processes
// on one PostgreSQL database for tests: instance i listens on 127.0.0.(i+2)
// (HTTP, metrics and every node's port), with a short lease. Tests build
// the binary themselves (in TestMain) and pass its path. See
// docs/deploy.md for the deployment it imitates.
package clustertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a set of serve instances sharing DB.
type Cluster struct {
	t         testing.TB
	Bin       string
	DB        string // the database URL the instances use, unless an Instance has its own
	Lease     time.Duration
	NodePorts string   // FIRST-LAST
	Args      []string // more serve flags for every instance, set before starting
	Instances []*Instance
}

// Instance is one serve process of a Cluster.
type Instance struct {
	c       *Cluster
	Name    string
	IP      string
	HTTP    string // http://IP:PORT once started
	Metrics string // IP:PORT of /metrics
	DB      string // its database URL ("" means the cluster's)
	httpAdr string
	cmd     *exec.Cmd
	out     *buffer
	done    chan error
}

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// CheckLoopback skips t unless 127.0.0.2..127.0.0.(n+1) are bindable.
func CheckLoopback(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", i+2))
		if err != nil {
			t.Skipf("cluster tests need the loopback addresses 127.0.0.2..127.0.0.%d: %v", n+1, err)
		}
		ln.Close()
	}
}

// NodesDomain is every instance's --nodes-domain: node host names are
// NAME.hub.test whichever instance runs or shows them (tests connect to
// an instance's IP and the node's port).
const NodesDomain = "hub.test"

// BinEnv names a binary to run instead of the one a test built, e.g.
// one built with -race: OCKAMHUB_CLUSTERTEST_BIN=/tmp/ockamhub-race.
const BinEnv = "OCKAMHUB_CLUSTERTEST_BIN"

// New returns a cluster of n instances (not started) on database db.
func New(t testing.TB, bin, db string, n int, lease time.Duration) *Cluster {
	t.Helper()
	if b := os.Getenv(BinEnv); b != "" {
		bin = b
	}
	CheckLoopback(t, n)
	c := &Cluster{t: t, Bin: bin, DB: db, Lease: lease}
	// A port range free on every instance's address, below the ephemeral
	// range (relays and clients bind ephemeral ports on these addresses).
	low := ephemeralLow()
	for try := 0; ; try++ {
		first := 10000 + rand.IntN(max(low-10000-40, 1000))
		if free(first, 40, n) {
			c.NodePorts = fmt.Sprintf("%d-%d", first, first+39)
			break
		}
		if try > 50 {
			t.Fatal("clustertest: no free port range")
		}
	}
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		c.Instances = append(c.Instances, &Instance{c: c, Name: fmt.Sprintf("i%d", i+1), IP: ip,
			httpAdr: freeAddr(t, ip), Metrics: freeAddr(t, ip)})
	}
	t.Cleanup(func() {
		for _, in := range c.Instances {
			in.Kill()
		}
	})
	return c
}

func free(first, count, n int) bool {
	for i := range n {
		for p := first; p < first+count; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i+2, p))
			if err != nil {
				return false
			}
			ln.Close()
		}
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 11040 {
		return 32768
	}
	return n
}

func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartAll starts every instance.
func (c *Cluster) StartAll() {
	c.t.Helper()
	for _, in := range c.Instances {
		in.Start()
	}
}

// Start runs the instance's serve process and waits for its "listening
// on" line.
func (in *Instance) Start() {
	t := in.c.t
	t.Helper()
	db := in.DB
	if db == "" {
		db = in.c.DB
	}
	in.cmd = exec.Command(in.c.Bin, "serve", "--db", db, "--instance", in.Name, "--http", in.httpAdr,
		"--nodes-listen", in.IP, "--lease", in.c.Lease.String(), "--metrics", in.Metrics,
		"--node-ports", in.c.NodePorts, "--nodes-domain", NodesDomain, "--max-nodes-per-user", "0", "--node-creations-per-hour", "0",
		"--log-format", "text", "--log-level", "debug")
	in.cmd.Args = append(in.cmd.Args, in.c.Args...)
	in.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	if in.out == nil {
		in.out = &buffer{} // kept across restarts
	}
	in.done = make(chan error, 1)
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd.Stderr = in.out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			in.out.Write([]byte(sc.Text() + "\n"))
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				select {
				case first <- u:
				default:
				}
			}
		}
		in.done <- in.cmd.Wait()
	}()
	select {
	case in.HTTP = <-first:
	case err := <-in.done:
		in.done <- err
		t.Fatalf("%s exited (%v) before listening:\n%s", in.Name, err, in.out)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not print its address within 60 s:\n%s", in.Name, in.out)
	}
}

// Running reports whether the process runs.
func (in *Instance) Running() bool {
	if in.cmd == nil {
		return false
	}
	select {
	case err := <-in.done:
		in.done <- err
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to end.
func (in *Instance) Kill() {
	if !in.Running() {
		return
	}
	in.cmd.Process.Kill()
	err := <-in.done
	in.done <- err
}

// Stop sends SIGTERM and waits (up to 60 s) for a clean exit.
func (in *Instance) Stop() error {
	if !in.Running() {
		return nil
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(60 * time.Second):
		in.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 60 s of SIGTERM", in.Name)
	}
}

// Output is what the process printed (stdout and stderr).
func (in *Instance) Output() string {
	if in.out == nil {
		return ""
	}
	return in.out.String()
}

// NodeAddr is the address of a node's port on this instance.
func (in *Instance) NodeAddr(port int) string { return net.JoinHostPort(in.IP, strconv.Itoa(port)) }

var nodeLine = regexp.MustCompile(`^ockamhub_connections\{node="([^"]+)"\}`)

// Nodes returns the names of the nodes the instance runs now, from
// /metrics (every running node has a series there).
func (in *Instance) Nodes() (map[string]bool, error) {
	m, err := in.Scrape()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range strings.Split(m, "\n") {
		if g := nodeLine.FindStringSubmatch(l); g != nil {
			out[g[1]] = true
		}
	}
	return out, nil
}

// Scrape returns the instance's /metrics text.
func (in *Instance) Scrape() (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + in.Metrics + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Metric returns the value of an unlabelled metric from /metrics.
func (in *Instance) Metric(name string) (float64, error) {
	m, err := in.Scrape()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}
