package cli

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/internal/telemetry"
)

// TestMetricsHostGuard: the debug listener (--metrics 127.0.0.1:9090)
// answered any Host, so a page on evil.example whose name resolves to
// 127.0.0.1 (DNS rebinding) could read /debug/pprof/cmdline, with
// --github-client-secret in it, and /metrics, with every node's name.
// Now a loopback listener answers loopback names only.
func TestMetricsHostGuard(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := func() map[string]hub.Stats { return map[string]hub.Stats{"alice-secret-node": {}} }
	srv := &http.Server{Handler: metricsHostGuard(telemetry.Handler(telemetry.NewRegistry(src), func() error { return nil }), ln.Addr()),
		ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tests := []struct {
		host, path string
		want       int
	}{
		{"evil.example:" + port, "/debug/pprof/cmdline", http.StatusMisdirectedRequest},
		{"evil.example", "/metrics", http.StatusMisdirectedRequest},
		{"127.0.0.1.evil.example:" + port, "/healthz", http.StatusMisdirectedRequest},
		{"127.0.0.1:" + port, "/healthz", http.StatusOK},
		{"localhost:" + port, "/metrics", http.StatusOK},
		{"[::1]:" + port, "/healthz", http.StatusOK},
	}
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range tests {
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+ln.Addr().String()+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Host %s %s: %d, want %d", tc.host, tc.path, resp.StatusCode, tc.want)
		}
		if tc.want != http.StatusOK && strings.Contains(string(body), "alice-secret-node") {
			t.Errorf("Host %s %s: the refusal shows a node name", tc.host, tc.path)
		}
		if tc.path == "/metrics" && tc.want == http.StatusOK && !strings.Contains(string(body), "alice-secret-node") {
			t.Errorf("Host %s /metrics: node not in the metrics:\n%.300s", tc.host, body)
		}
	}
	// Another address is the operator's private network: left as is.
	inner := http.NewServeMux()
	if got := metricsHostGuard(inner, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9090}); got != http.Handler(inner) {
		t.Error("a non-loopback listener got the loopback Host check")
	}
}
