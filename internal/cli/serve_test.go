package cli_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/cli"
)

// serveBuffer collects a command's stderr safely.
type serveBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *serveBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *serveBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serveProc is an "ockamhub serve" running in-process.
type serveProc struct {
	url    string // http://127.0.0.1:PORT
	cancel context.CancelFunc
	exited chan int
	stderr *serveBuffer
}

// startServe runs "ockamhub serve" on 127.0.0.1:0 with data in dir and
// waits for its "listening on" line.
func startServe(t *testing.T, dir, ports string, extra ...string) *serveProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &serveProc{cancel: cancel, exited: make(chan int, 1), stderr: &serveBuffer{}}
	go func() {
		p.exited <- cli.Main(ctx, append([]string{"serve", "--http", "127.0.0.1:0", "--data", dir, "--node-ports", ports, "--log-format", "text"}, extra...), pw, p.stderr)
		pw.Close()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case line, ok := <-lines:
		u, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found || !strings.HasPrefix(u, "http://127.0.0.1:") && !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Fatalf("first line %q, want listening on http://127.0.0.1:PORT\nstderr:\n%s", line, p.stderr)
		}
		p.url = u
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not print its address\nstderr:\n%s", p.stderr)
	}
	return p
}

// stop cancels serve's context and checks that it exits 0; it may be
// called more than once.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	if p.exited == nil {
		return
	}
	p.cancel()
	select {
	case code := <-p.exited:
		if code != 0 {
			t.Errorf("serve exited %d, want 0\nstderr:\n%s", code, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("serve did not stop within 15 s of cancel\nstderr:\n%s", p.stderr)
	}
	p.exited = nil
}

func serveClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	// No keep-alives, so no client goroutines outlive a test.
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// serveNodePorts returns a small random port range below the ephemeral
// ports.
func serveNodePorts() string {
	first := 20000 + rand.IntN(10000)
	return fmt.Sprintf("%d-%d", first, first+9)
}

type serveNode struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Hostname string `json:"hostname"`
	Port     int    `json:"port"`
	Status   string `json:"status"`
}

// serveSignIn signs c in as user with a plain POST, as curl would, and
// follows the redirect to the dashboard.
func serveSignIn(t *testing.T, c *http.Client, base, user string) {
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

func serveAPI(t *testing.T, c *http.Client, method, u, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: got %s, want %d\n%s", method, u, resp.Status, want, b)
	}
	return b
}

// serveEcho sends hello to the echo_service at addr and checks the reply.
func serveEcho(t *testing.T, addr string) { t.Helper(); hubtest.Echo(t, addr) }

// TestServe signs in, creates a node through the API, echoes through it
// and stops serve with its context.
func TestServe(t *testing.T) {
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	ml.Close()
	p := startServe(t, t.TempDir(), serveNodePorts(), "--metrics", metrics)
	c := serveClient()
	serveSignIn(t, c, p.url, "alice")
	var n serveNode
	if err := json.Unmarshal(serveAPI(t, c, "POST", p.url+"/api/v1/nodes", `{"name": "demo"}`, http.StatusCreated), &n); err != nil {
		t.Fatal(err)
	}
	if n.Status != "running" || n.Hostname != "127.0.0.1" {
		t.Fatalf("created node %+v, want running on 127.0.0.1", n)
	}
	serveEcho(t, fmt.Sprintf("127.0.0.1:%d", n.Port))
	// The metrics endpoint shows the node's counters, labelled by name.
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `ockamhub_frames_total{direction="in",node="demo"} 1`) {
		t.Errorf("metrics lack the node's frame count:\n%s", body)
	}
	p.stop(t)
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.stderr)
	}
}

// TestServeRestart stops serve and starts it again on the same data
// directory: the account, its session and its node come back, and the node
// answers on the same port.
func TestServeRestart(t *testing.T) {
	dir, ports := t.TempDir(), serveNodePorts()
	p := startServe(t, dir, ports)
	c := serveClient()
	serveSignIn(t, c, p.url, "alice")
	var n serveNode
	if err := json.Unmarshal(serveAPI(t, c, "POST", p.url+"/api/v1/nodes", `{"name": "keeper"}`, http.StatusCreated), &n); err != nil {
		t.Fatal(err)
	}
	p.stop(t)

	p = startServe(t, dir, ports)
	// The session cookie of before the restart still works (cookies are
	// per host, not per port, so the jar sends it to the new port).
	var list struct{ Nodes []serveNode }
	if err := json.Unmarshal(serveAPI(t, c, "GET", p.url+"/api/v1/nodes", "", http.StatusOK), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Nodes) != 1 || list.Nodes[0].ID != n.ID || list.Nodes[0].Port != n.Port || list.Nodes[0].Status != "running" {
		t.Fatalf("nodes after restart: got %+v, want %+v running", list.Nodes, n)
	}
	serveEcho(t, fmt.Sprintf("127.0.0.1:%d", n.Port))
	// Signing in again by name finds the same account.
	c2 := serveClient()
	serveSignIn(t, c2, p.url, "alice")
	if err := json.Unmarshal(serveAPI(t, c2, "GET", p.url+"/api/v1/nodes", "", http.StatusOK), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Nodes) != 1 || list.Nodes[0].ID != n.ID {
		t.Fatalf("nodes after signing in again: got %+v", list.Nodes)
	}
	serveAPI(t, c2, "DELETE", fmt.Sprintf("%s/api/v1/nodes/%d", p.url, n.ID), "", http.StatusNoContent)
}

func TestServeUsage(t *testing.T) {
	t.Setenv("OCKAMHUB_GITHUB_CLIENT_ID", "")
	t.Setenv("OCKAMHUB_GITHUB_CLIENT_SECRET", "")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--node-ports", "5000-4000"},
		{"--node-ports", "x"},
		{"--max-nodes-per-user", "-1"},
		{"--github-client-id", "only-the-id"},
		{"--tls-cert", "cert.pem"},
		{"--http", "nonsense"},
		{"--public-url", "ftp://x"},
		{"--db", "mysql://user:pw@db/hub"},
		{"--db", "sqlite:"},
		{"--db", "ockamhub.db"},
		{"extra"},
	} {
		var stderr serveBuffer
		code := cli.Main(t.Context(), append([]string{"serve", "--http", "127.0.0.1:0", "--data", dir}, args...), io.Discard, &stderr)
		if code != 2 {
			t.Errorf("serve %v: exit %d, want 2\n%s", args, code, stderr.String())
		}
	}
}

// TestServeTLS serves HTTPS with a self-signed certificate: the session
// cookie is then Secure and has the __Host- prefix.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	p := startServe(t, dir, serveNodePorts(), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(p.url, "https://") {
		t.Fatalf("serve with a certificate listens on %s, want https", p.url)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.PostForm(p.url+"/auth/local", url.Values{"username": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-ockamhub_session" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.Secure || !session.HttpOnly {
		t.Fatalf("HTTPS sign-in: got %s, cookies %v; want 303 and a Secure __Host-ockamhub_session", resp.Status, resp.Cookies())
	}
}
