package cli_test

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/internal/cli"
)

// hostRequest sends a request to serve with the given Host header.
func hostRequest(t *testing.T, method, u, host, form string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := serveClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestServeSignInBehindProxy reproduces finding 3: with --http on
// loopback and --public-url https://hub.example.com (the reverse-proxy
// set-up), the passwordless development sign-in was on for the internet.
func TestServeSignInBehindProxy(t *testing.T) {
	t.Setenv("OCKAMHUB_GITHUB_CLIENT_ID", "")
	t.Setenv("OCKAMHUB_GITHUB_CLIENT_SECRET", "")
	form := url.Values{"username": {"intruder"}}.Encode()
	p := startServe(t, t.TempDir(), serveNodePorts(), "--public-url", "https://hub.example.com")
	if resp := hostRequest(t, "POST", p.url+"/auth/local", "hub.example.com", form); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("development sign-in behind a proxy: got %s, want 404 (disabled)", resp.Status)
	}
	if log := p.stderr.String(); !strings.Contains(log, "local_signin=false") {
		t.Fatalf("startup log does not say the development sign-in is off:\n%s", log)
	}
	p.stop(t)

	// Turned on explicitly: it works, and the log warns.
	p = startServe(t, t.TempDir(), serveNodePorts(), "--public-url", "https://hub.example.com", "--allow-local-signin")
	if resp := hostRequest(t, "POST", p.url+"/auth/local", "hub.example.com", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("--allow-local-signin: got %s, want 303", resp.Status)
	}
	if log := p.stderr.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "the development sign-in is on and the server is not on loopback only") {
		t.Fatalf("no warning in the startup log:\n%s", log)
	}
	p.stop(t)

	// Loopback public URL and loopback --http (the default): on, no warning.
	p = startServe(t, t.TempDir(), serveNodePorts())
	if resp := hostRequest(t, "POST", p.url+"/auth/local", strings.TrimPrefix(p.url, "http://"), form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("loopback: got %s, want 303", resp.Status)
	}
	if strings.Contains(p.stderr.String(), "development sign-in is on and") {
		t.Fatalf("warning on loopback:\n%s", p.stderr)
	}
}

// TestServeHostCheck reproduces finding 4 against serve: a request with
// Host: evil.example (a rebound name) signed in; now it gets 421 on every
// route, sign-in included.
func TestServeHostCheck(t *testing.T) {
	p := startServe(t, t.TempDir(), serveNodePorts())
	form := url.Values{"username": {"victim"}}.Encode()
	for _, path := range []string{"/auth/local", "/signin", "/api/v1/nodes", "/static/style.css"} {
		method, body := "GET", ""
		if path == "/auth/local" {
			method, body = "POST", form
		}
		if resp := hostRequest(t, method, p.url+path, "evil.example:80", body); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("%s %s with Host evil.example: got %s, want 421", method, path, resp.Status)
		}
	}
	if resp := hostRequest(t, "GET", p.url+"/signin", "localhost", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("Host localhost on a loopback serve: got %s, want 200", resp.Status)
	}
	p.stop(t)
	p = startServe(t, t.TempDir(), serveNodePorts(), "--public-url", "https://hub.example.com")
	if resp := hostRequest(t, "GET", p.url+"/signin", "localhost", ""); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host localhost with a public URL elsewhere: got %s, want 421", resp.Status)
	}
	if resp := hostRequest(t, "GET", p.url+"/signin", "hub.example.com", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("Host of the public URL: got %s, want 200", resp.Status)
	}
}

// TestServeDataModes reproduces finding 8: with --data already there, the
// directory stayed 755 and the database files 644. Now serve narrows them
// and warns.
func TestServeDataModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	p := startServe(t, dir, serveNodePorts())
	p.stop(t)
	db := filepath.Join(dir, "ockamhub.db")
	for _, name := range []string{dir, db} {
		os.Chmod(name, 0o755)
	}
	for _, name := range []string{db + "-wal", db + "-shm"} {
		os.WriteFile(name, nil, 0o644)
		os.Chmod(name, 0o644)
	}
	p = startServe(t, dir, serveNodePorts())
	defer p.stop(t)
	want := map[string]os.FileMode{dir: 0o700, db: 0o600, db + "-wal": 0o600, db + "-shm": 0o600}
	for name, m := range want {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != m {
			t.Errorf("%s: mode %o, want %o", name, st.Mode().Perm(), m)
		}
	}
	log := p.stderr.String()
	if !strings.Contains(log, "data directory was readable by others") || strings.Count(log, "database file was readable by others") != 3 {
		t.Fatalf("no warnings in the log:\n%s", log)
	}
}

// TestServeNoOperatorForwarderToken: finding 6 in serve: the forwarder
// tokens were one operator-wide set opening every user's names. serve no
// longer has those flags; the hub command keeps them.
func TestServeNoOperatorForwarderToken(t *testing.T) {
	for _, flag := range []string{"--forwarder-token=x", "--forwarder-tokens=f", "--static-forwarding"} {
		var stderr serveBuffer
		if code := cli.Main(t.Context(), []string{"serve", "--http", "127.0.0.1:0", "--data", t.TempDir(), flag}, io.Discard, &stderr); code != 2 {
			t.Errorf("serve %s: exit %d, want 2 (no such flag)\n%s", flag, code, stderr.String())
		}
	}
}
