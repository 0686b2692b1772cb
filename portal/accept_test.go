package portal_test

import (
	"bytes"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// goid is the calling goroutine's number, from its stack's header.
func goid() int {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	n, _ := strconv.Atoi(string(s[:bytes.IndexByte(s, ' ')]))
	return n
}

// goListener notes which goroutine accepted each connection, and which
// first read from it.
type goListener struct {
	net.Listener
	mu       sync.Mutex
	accepted []int
	read     []int
}

type goConn struct {
	net.Conn
	l    *goListener
	i    int
	once sync.Once
}

func (l *goListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepted = append(l.accepted, goid())
	l.read = append(l.read, 0)
	return &goConn{Conn: c, l: l, i: len(l.accepted) - 1}, nil
}

func (c *goConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.read[c.i] = goid()
		c.l.mu.Unlock()
	})
	return c.Conn.Read(p)
}

// TestInletServesInAcceptingGoroutine: the goroutine that accepts a
// connection serves it (sends its Ping, reads the client), having started
// another to accept the next: no hand-off between the client's connect and
// its portal's Ping. Every connection is still served, one after another
// and at once.
func TestInletServesInAcceptingGoroutine(t *testing.T) {
	n := node.New(node.Config{})
	defer n.Close()
	o, err := portal.NewOutlet(n, portal.OutletConfig{Target: echoTarget(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	in, err := portal.NewInlet(n, portal.InletConfig{Route: routing.Route{o.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &goListener{Listener: ln}
	served := make(chan error, 1)
	go func() { served <- in.Serve(gl) }()
	var open []net.Conn
	for range 3 {
		c := dial(t, ln.Addr().String())
		if err := echoCheck(t, c, 1000); err != nil {
			t.Fatal(err)
		}
		open = append(open, c) // still open while the next is served
	}
	for _, c := range open {
		c.Close()
	}
	in.Close()
	if err := <-served; err != portal.ErrClosed {
		t.Fatalf("Serve: %v, want ErrClosed", err)
	}
	gl.mu.Lock()
	defer gl.mu.Unlock()
	seen := map[int]bool{}
	for i := range gl.accepted {
		if gl.read[i] != gl.accepted[i] {
			t.Errorf("connection %d: accepted in goroutine %d, first read in %d", i, gl.accepted[i], gl.read[i])
		}
		if seen[gl.accepted[i]] {
			t.Errorf("connection %d: accepted in goroutine %d, which serves an earlier one", i, gl.accepted[i])
		}
		seen[gl.accepted[i]] = true
	}
}
