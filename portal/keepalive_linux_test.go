//go:build linux

package portal_test

import (
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// acceptedKeepAlive finds, among this process's descriptors, the socket
// an inlet accepted from client (its local end is the client's remote
// one and the other way round) and returns its SO_KEEPALIVE; found is
// false while there is none.
func acceptedKeepAlive(t *testing.T, client net.Conn) (on, found bool) {
	t.Helper()
	local := client.LocalAddr().(*net.TCPAddr)
	remote := client.RemoteAddr().(*net.TCPAddr)
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, de := range des {
		fd, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		pa, err := syscall.Getpeername(fd)
		if err != nil {
			continue
		}
		s, ok1 := sa.(*syscall.SockaddrInet4)
		p, ok2 := pa.(*syscall.SockaddrInet4)
		if !ok1 || !ok2 || s.Port != remote.Port || p.Port != local.Port {
			continue
		}
		v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		if err != nil {
			continue // closed and reused under us
		}
		return v != 0, true
	}
	return false, false
}

// TestListenKeepAliveLate: a connection accepted by Listen has no
// keep-alive while its portal's Ping waits for an answer, and has it once
// the portal is open.
func TestListenKeepAliveLate(t *testing.T) {
	hubAddr, _ := startHub(t, hub.Config{}, nil)

	// No outlet answers: the handshake waits.
	n, _, _ := hubtest.Connect(t, hubAddr)
	hubRoute := routing.Route{routing.TCPAddress(hubAddr), routing.LocalAddress("nobody")}
	waiting, _ := startInlet(t, n, portal.InletConfig{Route: hubRoute, HandshakeTimeout: time.Minute})
	c, err := net.Dial("tcp", waiting)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		on, found := acceptedKeepAlive(t, c)
		if found {
			if on {
				t.Fatal("keep-alive on before the outlet answered")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the inlet's socket never appeared")
		}
		time.Sleep(time.Millisecond) // polls for the accept, not a synchronisation
	}

	// An outlet answers: once a byte has come back, the portal is open and
	// keep-alive on (the first connection on a route carries no early
	// data, so its byte goes out only after the handshake's end).
	addr, _, _ := plainPair(t, hubAddr, echoTarget(t), portal.OutletConfig{}, portal.InletConfig{})
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := c2.Read(b); err != nil || b[0] != 7 {
		t.Fatalf("echo: %v %v", b, err)
	}
	on, found := acceptedKeepAlive(t, c2)
	if !found || !on {
		t.Fatalf("keep-alive after the portal opened: on %v, found %v", on, found)
	}
}
