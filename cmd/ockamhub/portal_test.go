package main_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/vectorfile"
)

// freeAddr returns a 127.0.0.1 address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// get fetches url through a client that does not reuse connections, so
// that each request is a new portal.
func get(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// getEventually retries get until it succeeds or 20 s pass (a restarted
// process needs to reconnect and register again).
func getEventually(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := get(url)
		if err == nil && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %q, %v; want %q", url, body, err, want)
		}
		time.Sleep(100 * time.Millisecond) // polling a restarting process
	}
}

func stop(t *testing.T, p *proc, what string) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", what, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit after SIGTERM", what)
	}
}

func httpTarget(t *testing.T) (string, string) {
	body := strings.Repeat("portal works. ", 5000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), body
}

// TestPortalHTTP: an HTTP server behind an outlet, which is behind the
// hub's forwarder, fetched through an inlet: once, then 100 connections at
// once, then after the outlet process restarts, then after the hub
// restarts. All real processes.
func TestPortalHTTP(t *testing.T) {
	target, body := httpTarget(t)
	hubAddr := freeAddr(t)
	hub := start(t, "node", "--listen", hubAddr, "--static-forwarding")
	hub.expect(t, `^listening on `)
	outlet := start(t, "portal", "outlet", "--target", target, "--hub", hubAddr, "--forwarder-name", "web")
	route := outlet.expect(t, `^outlet route: (1#`+regexp.QuoteMeta(hubAddr)+` => 0#forward_to_web)$`)[1]
	inlet := start(t, "portal", "inlet", "--listen", "127.0.0.1:0", "--route", route)
	addr := inlet.expect(t, `^inlet listening on (127\.0\.0\.1:\d+)$`)[1]
	url := "http://" + addr + "/"
	if got, err := get(url); err != nil || got != body {
		t.Fatalf("GET through the portal: %d bytes, %v", len(got), err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			if got, err := get(url); err != nil || got != body {
				errs <- fmt.Errorf("%d bytes, %v", len(got), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent GET: %v", err)
	}

	stop(t, outlet, "outlet")
	outlet = start(t, "portal", "outlet", "--target", target, "--hub", hubAddr, "--forwarder-name", "web")
	outlet.expect(t, `^outlet route: `+regexp.QuoteMeta(route)+`$`)
	getEventually(t, url, body)

	stop(t, hub, "hub")
	hub = start(t, "node", "--listen", hubAddr, "--static-forwarding")
	hub.expect(t, `^listening on `)
	outlet.expect(t, `^outlet route: `+regexp.QuoteMeta(route)+`$`)
	getEventually(t, url, body)

	stop(t, inlet, "inlet")
	stop(t, outlet, "outlet")
}

// TestPortalSecure: the same through a secure channel, with the inlet
// pinning the identity the outlet printed; a wrong pin is refused.
func TestPortalSecure(t *testing.T) {
	target, body := httpTarget(t)
	dir := t.TempDir()
	hub := start(t, "node", "--listen", "127.0.0.1:0")
	hubAddr := hub.expect(t, `^listening on (127\.0\.0\.1:\d+)$`)[1]
	outlet := start(t, "portal", "outlet", "--target", target, "--hub", hubAddr, "--secure", "--key", filepath.Join(dir, "outlet.key"))
	id := outlet.expect(t, `^identity: ([0-9a-f]{64})$`)[1]
	route := outlet.expect(t, `^outlet route: (1#\S+ => 0#\S+)$`)[1]

	wrong := strings.Repeat("ab", 32)
	_, errs, code := run(t, "portal", "inlet", "--listen", "127.0.0.1:0", "--route", route, "--secure", "--peer", wrong, "--key", filepath.Join(dir, "inlet.key"))
	if code == 0 {
		t.Fatalf("an inlet pinning another identity started: %s", errs)
	}

	inlet := start(t, "portal", "inlet", "--listen", "127.0.0.1:0", "--route", route, "--secure", "--peer", id, "--key", filepath.Join(dir, "inlet.key"))
	addr := inlet.expect(t, `^inlet listening on (127\.0\.0\.1:\d+)$`)[1]
	if got, err := get("http://" + addr + "/"); err != nil || got != body {
		t.Fatalf("GET through the secure portal: %d bytes, %v", len(got), err)
	}
	stop(t, inlet, "inlet")
	stop(t, outlet, "outlet")
}

// TestPortalDirect: without a hub, the outlet serves inlets over TCP.
func TestPortalDirect(t *testing.T) {
	target, body := httpTarget(t)
	outlet := start(t, "portal", "outlet", "--target", target, "--listen", "127.0.0.1:0", "--g2")
	route := outlet.expect(t, `^outlet route: (1#127\.0\.0\.1:\d+ => 0#outlet)$`)[1]
	inlet := start(t, "portal", "inlet", "--listen", "127.0.0.1:0", "--route", route)
	addr := inlet.expect(t, `^inlet listening on (127\.0\.0\.1:\d+)$`)[1]
	if got, err := get("http://" + addr + "/"); err != nil || got != body {
		t.Fatalf("GET through a direct G2 portal: %d bytes, %v", len(got), err)
	}
}

func TestPortalUsage(t *testing.T) {
	for _, args := range [][]string{
		{"portal"},
		{"portal", "outlet", "--hub", "127.0.0.1:1"},
		{"portal", "outlet", "--target", "127.0.0.1:1"},
		{"portal", "outlet", "--target", "127.0.0.1:1", "--hub", "127.0.0.1:1", "--listen", "127.0.0.1:0"},
		{"portal", "outlet", "--target", "127.0.0.1:1", "--hub", "127.0.0.1:1", "--key", "x"},
		{"portal", "inlet", "--listen", "127.0.0.1:0"},
		{"portal", "inlet", "--listen", "127.0.0.1:0", "--route", "0#outlet"},
		{"portal", "inlet", "--listen", "127.0.0.1:0", "--route", "1#127.0.0.1:1", "--peer", strings.Repeat("ab", 32)},
	} {
		_, errs, code := run(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errs)
		}
	}
	if _, _, code := run(t, "portal", "outlet", "--help"); code != 0 {
		t.Errorf("portal outlet --help: exit %d", code)
	}
}

// TestPortalNoFlowControl: with --no-flow-control a direct outlet answers
// the 2021 G3 Ping of portals.md §7.1 with exactly the Pong of §7.2 (the
// outlet's worker address aside), with no extension offer appended.
func TestPortalNoFlowControl(t *testing.T) {
	v, err := vectorfile.Load(filepath.Join("..", "..", "portal", "testdata", "portal-g3-sequence.hex"))
	if err != nil {
		t.Fatal(err)
	}
	target, _ := httpTarget(t)
	outlet := start(t, "portal", "outlet", "--target", target, "--listen", "127.0.0.1:0", "--no-flow-control")
	addr := outlet.expect(t, `^outlet route: 1#(127\.0\.0\.1:\d+) => 0#outlet$`)[1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(v.Segments["ping"]); err != nil {
		t.Fatal(err)
	}
	want := v.Segments["pong"]
	got := make([]byte, len(want)) // an offer would change the length header
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	const offO = 41 // the return route's 32-hex address, O
	copy(got[offO:offO+32], want[offO:offO+32])
	if !bytes.Equal(got, want) {
		t.Fatalf("pong\n got % x\nwant % x", got, want)
	}
	stop(t, outlet, "outlet")
}
