package main_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/ockamhub/ockamhub/internal/clustertest"
	"github.com/ockamhub/ockamhub/internal/faultnet"
	"github.com/ockamhub/ockamhub/internal/pgtest"
)

// clusterLease is the instances' lease in the cluster tests: short, so
// failover is quick, long enough for a loaded 2-core machine.
const clusterLease = 2 * time.Second

type clNode struct {
	ID       int64  `json:"id"`
	Hostname string `json:"hostname"`
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Address  string `json:"address"`
	Instance string `json:"instance"`
}

// echoFrom opens a connection from local IP src to addr and echoes once,
// with the bytes of a 2021 Rust client.
func echoFrom(src, addr string) error {
	d := net.Dialer{Timeout: 3 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c)
}

// poll calls f every 100 ms until it returns nil or within passes, and
// returns how long it took.
func poll(t *testing.T, what string, within time.Duration, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allEcho checks that every node echoes through every listed instance.
func allEcho(ins []*clustertest.Instance, nodes []clNode) error {
	for _, in := range ins {
		for _, n := range nodes {
			if err := echoFrom("127.0.0.1", in.NodeAddr(n.Port)); err != nil {
				return fmt.Errorf("node %s through %s: %w", n.Name, in.Name, err)
			}
		}
	}
	return nil
}

// runningSets samples which nodes each live instance runs and fails if a
// node runs on two instances at once.
func runningSets(t *testing.T, ins []*clustertest.Instance) map[string]string {
	t.Helper()
	where := map[string]string{}
	for _, in := range ins {
		if !in.Running() {
			continue
		}
		ns, err := in.Nodes()
		if err != nil {
			continue // stopping or not up yet
		}
		for n := range ns {
			if other, dup := where[n]; dup {
				t.Fatalf("node %s runs on %s and %s at once", n, other, in.Name)
			}
			where[n] = in.Name
		}
	}
	return where
}

func startCluster(t *testing.T, setup ...func(*clustertest.Cluster)) (*clustertest.Cluster, *http.Client, []clNode) {
	db := pgtest.NewDatabase(t)
	c := clustertest.New(t, binary, db, 3, clusterLease)
	for _, f := range setup {
		f(c)
	}
	c.StartAll()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("OCKAMHUB_CLUSTER_LOGS") == "1" {
			for _, in := range c.Instances {
				t.Logf("%s output:\n%s", in.Name, in.Output())
			}
		}
	})
	hc := pgClient()
	pgSignIn(t, hc, c.Instances[0].HTTP, "alice")
	// One session for all: the cookie set by i1 works on i2 and i3 (behind
	// a load balancer they share one host name).
	u0, _ := url.Parse(c.Instances[0].HTTP)
	for _, in := range c.Instances[1:] {
		u, _ := url.Parse(in.HTTP)
		hc.Jar.SetCookies(u, hc.Jar.Cookies(u0))
	}
	// Every instance has registered before the nodes are placed.
	poll(t, "three live instances", 30*time.Second, func() error {
		for _, in := range c.Instances {
			v, err := in.Metric("ockamhub_cluster_live_instances")
			if err != nil || v != 3 {
				return fmt.Errorf("%s sees %v live instances (%v)", in.Name, v, err)
			}
		}
		return nil
	})
	var nodes []clNode
	for i := range 9 {
		// Same session on every instance: created through each in turn.
		base := c.Instances[i%3].HTTP
		code, body := pgCall(t, hc, "POST", base+"/api/v1/nodes", fmt.Sprintf(`{"name":"n%d"}`, i))
		if code != http.StatusCreated {
			t.Fatalf("create n%d on %s: %d %s", i, base, code, body)
		}
		var n clNode
		if err := json.Unmarshal([]byte(body), &n); err != nil {
			t.Fatal(err)
		}
		if n.Instance == "" {
			t.Fatalf("created node has no \"instance\": %s", body)
		}
		if want := fmt.Sprintf("n%d.%s", i, clustertest.NodesDomain); n.Hostname != want || n.Address != fmt.Sprintf("%s:%d", want, n.Port) {
			t.Fatalf("created node: hostname %q, address %q; want %s:PORT whatever the instance", n.Hostname, n.Address, want)
		}
		nodes = append(nodes, n)
	}
	return c, hc, nodes
}

// TestClusterEveryInstanceAnswers: nine nodes spread over three
// instances echo through every instance's address (27 combinations); the
// owner sees the client's address through a relay (allow-list and
// per-address limit), and refuses a PROXY header from a non-instance.
func TestClusterEveryInstanceAnswers(t *testing.T) {
	c, hc, nodes := startCluster(t, func(c *clustertest.Cluster) {
		c.Args = []string{"--max-conns-per-ip", "6"}
	})
	perInstance := map[string]int{}
	for _, n := range nodes {
		perInstance[n.Instance]++
	}
	for _, in := range c.Instances {
		if perInstance[in.Name] != 3 {
			t.Errorf("placement: %v, want 3 nodes on each instance", perInstance)
		}
	}
	took := poll(t, "27 echoes", 30*time.Second, func() error { return allEcho(c.Instances, nodes) })
	t.Logf("all 27 instance×node combinations echo (%v after creation)", took)
	where := runningSets(t, c.Instances)
	for _, n := range nodes {
		if where[n.Name] != n.Instance {
			t.Errorf("node %s runs on %q, API says %q", n.Name, where[n.Name], n.Instance)
		}
	}

	// The API on another instance shows the same nodes, instances, and the
	// owner's published counters.
	for _, in := range c.Instances {
		code, body := pgCall(t, hc, "GET", in.HTTP+"/api/v1/nodes", "")
		var out struct{ Nodes []clNode }
		if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Nodes) != len(nodes) {
			t.Fatalf("list on %s: %d %s", in.Name, code, body)
		}
		for i, n := range out.Nodes {
			if n != nodes[i] {
				t.Errorf("%s's API shows %+v, created as %+v", in.Name, n, nodes[i])
			}
		}
		// The node page shows the instance too.
		code, body = pgCall(t, hc, "GET", fmt.Sprintf("%s/nodes/%d", in.HTTP, nodes[0].ID), "")
		if code != 200 || !strings.Contains(body, `<code id="instance">`+nodes[0].Instance+`</code>`) {
			t.Errorf("node page on %s: %d, no instance %s", in.Name, code, nodes[0].Instance)
		}
	}
	poll(t, "counters published", 20*time.Second, func() error {
		_, body := pgCall(t, hc, "GET", c.Instances[2].HTTP+"/api/v1/nodes", "")
		var out struct {
			Nodes []struct {
				Name     string
				Instance string
				Stats    struct {
					Accepted uint64 `json:"connections_accepted"`
				}
			}
		}
		json.Unmarshal([]byte(body), &out)
		for _, n := range out.Nodes {
			if n.Stats.Accepted < 3 {
				return fmt.Errorf("%s (on %s) shows %d accepted connections on i3's API, want >= 3", n.Name, n.Instance, n.Stats.Accepted)
			}
		}
		return nil
	})

	// Allow-list: set through an instance that does not run the node; the
	// owner applies it and judges relayed clients by their own address.
	target := nodes[0]
	setter := c.Instances[0]
	for _, in := range c.Instances {
		if in.Name != target.Instance {
			setter = in
		}
	}
	code, body := pgCall(t, hc, "PATCH", fmt.Sprintf("%s/api/v1/nodes/%d", setter.HTTP, target.ID), `{"allow":["127.0.0.9/32"]}`)
	if code != 200 {
		t.Fatalf("set allow-list: %d %s", code, body)
	}
	poll(t, "allow-list applied on the owner", 20*time.Second, func() error {
		for _, in := range c.Instances {
			if err := echoFrom("127.0.0.1", in.NodeAddr(target.Port)); err == nil {
				return fmt.Errorf("127.0.0.1 still admitted through %s", in.Name)
			}
			if err := echoFrom("127.0.0.9", in.NodeAddr(target.Port)); err != nil {
				return fmt.Errorf("127.0.0.9 through %s: %w", in.Name, err)
			}
		}
		return nil
	})

	// A client (not an instance) presenting a PROXY header, claiming to be
	// the allowed 127.0.0.9, is refused by the owner and by the others.
	for _, in := range c.Instances {
		conn, err := net.Dial("tcp", in.NodeAddr(target.Port))
		if err != nil {
			t.Fatal(err)
		}
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("127.0.0.9"), Port: 5000}, conn.RemoteAddr())
		h.WriteTo(conn)
		if err := echo(conn); err == nil {
			t.Errorf("spoofed PROXY header through %s was served", in.Name)
		}
		conn.Close()
	}

	// Per-address limit (--max-conns-per-ip 6): the owner counts relayed
	// connections under the client's address, wherever they came in. Six
	// connections from 127.0.0.1 spread over the three instances fill it;
	// a seventh, through any instance, is refused; 127.0.0.9 still gets in.
	// (Counted under the relays' addresses, no address would reach 6.)
	open := nodes[1]
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 6 {
		in := c.Instances[i%3]
		conn, err := net.Dial("tcp", in.NodeAddr(open.Port))
		if err != nil {
			t.Fatal(err)
		}
		if err := echo(conn); err != nil {
			t.Fatalf("connection %d through %s: %v", i+1, in.Name, err)
		}
		held = append(held, conn)
	}
	for _, in := range c.Instances {
		if err := echoFrom("127.0.0.1", in.NodeAddr(open.Port)); err == nil {
			t.Errorf("a 7th connection from 127.0.0.1 through %s was served past --max-conns-per-ip 6", in.Name)
		}
		if err := echoFrom("127.0.0.9", in.NodeAddr(open.Port)); err != nil {
			t.Errorf("127.0.0.9 through %s: %v", in.Name, err)
		}
	}
}

// TestClusterFailoverAndRollingRestart: a forwarder through one
// instance and send through another; kill -9 of an instance (nodes echo
// again through the survivors within lease + 5 s, no node ever on two
// instances, the forwarder re-registers); then a rolling restart.
func TestClusterFailoverAndRollingRestart(t *testing.T) {
	c, _, nodes := startCluster(t)
	poll(t, "27 echoes", 30*time.Second, func() error { return allEcho(c.Instances, nodes) })

	victim := c.Instances[2]
	var fnode clNode
	for _, n := range nodes {
		if n.Instance == victim.Name {
			fnode = n
			break
		}
	}
	// forwarder through i1 (relayed to i3), send through i2.
	fwd := start(t, "forwarder", "--hub", c.Instances[0].NodeAddr(fnode.Port))
	re := `^forwarding address: 1#` + regexp.QuoteMeta(c.Instances[0].NodeAddr(fnode.Port)) + ` => (0#[0-9a-f]{16})$`
	faddr := fwd.expect(t, re)[1]
	out, errs, code := run(t, "send", "--route", "1#"+c.Instances[1].NodeAddr(fnode.Port)+" => "+faddr, "via two instances")
	if code != 0 || out != "via two instances\n" {
		t.Fatalf("send through i2 to a forwarder on i1: exit %d, %q, %q", code, out, errs)
	}

	// kill -9.
	victim.Kill()
	killed := time.Now()
	survivors := c.Instances[:2]
	stop := make(chan struct{})
	sampled := make(chan int)
	go func() {
		n := 0
		defer func() { sampled <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			runningSets(t, survivors)
			n++
			time.Sleep(50 * time.Millisecond)
		}
	}()
	took := poll(t, "every node echoes through both survivors", clusterLease+5*time.Second+20*time.Second, func() error {
		return allEcho(survivors, nodes)
	})
	close(stop)
	t.Logf("failover: every node echoed through both survivors %v after kill -9 (lease %v; %d samples of running sets, never a node twice)", took+time.Since(killed)-took, clusterLease, <-sampled)
	if took > clusterLease+5*time.Second {
		t.Errorf("failover took %v, want within lease + 5 s = %v", took, clusterLease+5*time.Second)
	}
	faddr2 := fwd.expect(t, re)[1]
	out, errs, code = run(t, "send", "--route", "1#"+c.Instances[1].NodeAddr(fnode.Port)+" => "+faddr2, "after failover")
	if code != 0 || out != "after failover\n" {
		t.Fatalf("send after failover: exit %d, %q, %q", code, out, errs)
	}
	where := runningSets(t, survivors)
	if len(where) != 9 {
		t.Fatalf("after failover the survivors run %v, want all 9", where)
	}

	// Rolling restart: bring i3 back, then restart each instance in turn
	// (SIGTERM: hand-over), checking all nine nodes after each step.
	victim.Start()
	for _, in := range c.Instances {
		if err := in.Stop(); err != nil {
			t.Fatalf("stopping %s: %v\n%s", in.Name, err, in.Output())
		}
		var live []*clustertest.Instance
		for _, o := range c.Instances {
			if o != in {
				live = append(live, o)
			}
		}
		took := poll(t, "all nodes answer with "+in.Name+" stopped", 30*time.Second, func() error {
			runningSets(t, live)
			return allEcho(live, nodes)
		})
		t.Logf("rolling restart: %s stopped, all nodes answer through the others after %v", in.Name, took)
		if !strings.Contains(in.Output(), "handed node over") {
			t.Errorf("%s logged no hand-over", in.Name)
		}
		in.Start()
		poll(t, "all nodes answer with "+in.Name+" back", 30*time.Second, func() error {
			runningSets(t, c.Instances)
			return allEcho(c.Instances, nodes)
		})
	}
	where = runningSets(t, c.Instances)
	names := make([]string, 0, len(where))
	for n := range where {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) != 9 {
		t.Fatalf("after the rolling restart the instances run %v, want 9 nodes", where)
	}
}

// TestClusterDatabaseCut: an instance cut off from PostgreSQL (a
// black-holing proxy in front of it) stops its nodes within its lease;
// the others take them over; when the database returns the cluster
// converges with each node on exactly one instance.
func TestClusterDatabaseCut(t *testing.T) {
	var proxy *faultnet.Proxy
	c, _, nodes := startCluster(t, func(c *clustertest.Cluster) {
		u, err := url.Parse(c.DB)
		if err != nil {
			t.Fatal(err)
		}
		if proxy, err = faultnet.Listen(u.Host); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { proxy.Close() })
		u.Host = proxy.Addr()
		c.Instances[2].DB = u.String()
	})
	poll(t, "27 echoes", 30*time.Second, func() error { return allEcho(c.Instances, nodes) })
	cut := c.Instances[2]
	before, err := cut.Nodes()
	if err != nil || len(before) != 3 {
		t.Fatalf("%s runs %v (%v), want 3 nodes", cut.Name, before, err)
	}
	proxy.Blackout()
	cutAt := time.Now()
	stopped := poll(t, cut.Name+" stops its nodes", clusterLease+10*time.Second, func() error {
		runningSets(t, c.Instances)
		ns, err := cut.Nodes()
		if err != nil {
			return err
		}
		if len(ns) > 0 {
			return fmt.Errorf("%s still runs %v", cut.Name, ns)
		}
		return nil
	})
	t.Logf("%s stopped its nodes %v after losing the database (lease %v)", cut.Name, stopped, clusterLease)
	// The instance stops at 0.6 × lease after its last renewal; the poll
	// (a /metrics scrape every 100 ms on a loaded machine) gets 1 s slack.
	if stopped > clusterLease+time.Second {
		t.Errorf("%s stopped its nodes %v after the cut, want within the lease %v (+1 s polling slack)", cut.Name, stopped, clusterLease)
	}
	took := poll(t, "the others serve every node", clusterLease+5*time.Second+20*time.Second, func() error {
		runningSets(t, c.Instances)
		return allEcho(c.Instances[:2], nodes)
	})
	t.Logf("nodes served by the others %v after the cut", time.Since(cutAt))
	_ = took
	proxy.Restore()
	poll(t, "convergence after the database returns", 30*time.Second, func() error {
		where := runningSets(t, c.Instances)
		if len(where) != len(nodes) {
			return fmt.Errorf("running: %v", where)
		}
		if v, err := cut.Metric("ockamhub_cluster_fenced"); err != nil || v != 0 {
			return fmt.Errorf("%s fenced = %v (%v)", cut.Name, v, err)
		}
		return allEcho(c.Instances, nodes)
	})
}

// TestClusterAloneKeepsServing: an instance that was the only live one
// at its last renewal keeps serving its nodes through a database outage
// (nobody could take them over).
func TestClusterAloneKeepsServing(t *testing.T) {
	db := pgtest.NewDatabase(t)
	c := clustertest.New(t, binary, db, 1, clusterLease)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultnet.Listen(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	u.Host = proxy.Addr()
	in := c.Instances[0]
	in.DB = u.String()
	in.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", in.Name, in.Output())
		}
	})
	hc := pgClient()
	pgSignIn(t, hc, in.HTTP, "alice")
	n := pgCreateNode(t, hc, in.HTTP, "solo")
	poll(t, "echo", 20*time.Second, func() error { return echoFrom("127.0.0.1", in.NodeAddr(n.Port)) })
	proxy.Blackout()
	cutAt := time.Now()
	// Three leases without the database: the node answers all along.
	for time.Since(cutAt) < 3*clusterLease {
		if err := echoFrom("127.0.0.1", in.NodeAddr(n.Port)); err != nil {
			t.Fatalf("%v into the outage the lone instance's node does not answer: %v", time.Since(cutAt), err)
		}
		if v, err := in.Metric("ockamhub_cluster_fenced"); err != nil || v != 0 {
			t.Fatalf("lone instance fenced = %v (%v)", v, err)
		}
		time.Sleep(200 * time.Millisecond) // pacing the probes, not synchronisation
	}
	proxy.Restore()
	poll(t, "echo after the outage", 20*time.Second, func() error { return echoFrom("127.0.0.1", in.NodeAddr(n.Port)) })
}
