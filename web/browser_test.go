package web_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/ockamhub/ockamhub/internal/browsertest"
)

// TestBrowser runs the whole flow in headless Chromium: sign in, create a
// node, read its address off the confirmation page, echo through it over
// TCP, watch the dashboard count it, delete it. Screenshots go to the
// test's artifact directory (go test -artifacts keeps them).
func TestBrowser(t *testing.T) {
	ctx := browsertest.New(t)
	s := newServer(t, options{})
	shots := t.ArtifactDir()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}

	// Sign in with the development form.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible("#username"),
	); err != nil {
		t.Fatal(err)
	}
	shot("1-signin")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#username", "alice"),
		chromedp.Click("#local-signin"),
		chromedp.WaitVisible("#name"),
	); err != nil {
		t.Fatal(err)
	}
	if who := text("#who"); !strings.HasPrefix(who, "alice") {
		t.Fatalf("signed in as %q, want alice", who)
	}

	// Create a node; the browser lands on its confirmation page.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#name", "demo"),
		chromedp.Click("#create"),
		chromedp.WaitVisible("#address"),
		chromedp.WaitVisible(`button[data-copy="address"]`), // the script un-hid the copy buttons
	); err != nil {
		t.Fatal(err)
	}
	addr := text("#address")
	host, port := text("#hostname"), text("#port")
	if addr != net.JoinHostPort(host, port) || host != "127.0.0.1" {
		t.Fatalf("confirmation page: address %q, hostname %q, port %q", addr, host, port)
	}
	if route := text("#route"); route != "1#"+addr+" => echo_service" {
		t.Fatalf("route %q", route)
	}
	shot("2-node")

	// The address works: echo over TCP with the library.
	echo(t, addr)

	// The dashboard shows the node and counts the echo.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/dashboard"),
		chromedp.WaitVisible("#nodes"),
	); err != nil {
		t.Fatal(err)
	}
	row := text(`tr[data-node="demo"]`)
	for _, want := range []string{"demo", addr, "echo_service", "running", "1 / 1"} {
		if !strings.Contains(row, want) {
			t.Errorf("dashboard row %q lacks %q", row, want)
		}
	}
	shot("3-dashboard")

	// The owner restricts who may connect, on the node's page: a real
	// connection from 127.0.0.1 is then refused.
	if err := chromedp.Do(ctx,
		chromedp.Click(`tr[data-node="demo"] a`),
		chromedp.WaitVisible("#allow"),
		chromedp.SendKeys("#allow", "203.0.113.0/24"),
		chromedp.Click("#save-allow"),
		// The reloaded page shows the saved list.
		chromedp.WaitVisible(`#allow-state[data-restricted]`),
	); err != nil {
		t.Fatal(err)
	}
	if got := text("#allow-state"); got != "Only the networks listed may connect." {
		t.Fatalf("after saving the allow-list the page says %q", got)
	}
	shot("3b-allow-list")
	if err := echoErr(t, addr); err == nil {
		t.Fatal("a connection from 127.0.0.1 was served after the owner allowed only 203.0.113.0/24")
	}

	// A form on another origin cannot make the signed-in browser create a
	// node: cross-origin protection answers 403.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<form id="f" method="post" action="` + s.URL + `/nodes"><input name="name" value="evil"></form>
<script>document.getElementById("f").submit()</script>`))
	}))
	defer evil.Close()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(evil.URL),
		chromedp.WaitVisible(".alert"),
	); err != nil {
		t.Fatal(err)
	}
	if msg := text(".alert"); !strings.Contains(msg, "another site") {
		t.Fatalf("cross-origin form got %q, want the 403 explanation", msg)
	}

	// Delete the node from the dashboard.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/dashboard"),
		chromedp.Click(`tr[data-node="demo"] button.danger`),
		chromedp.WaitVisible("#create"),
		chromedp.WaitNotPresent("#nodes"),
	); err != nil {
		t.Fatal(err)
	}
	shot("4-deleted")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port of the deleted node is still busy: %v", err)
	}
	ln.Close()
}
