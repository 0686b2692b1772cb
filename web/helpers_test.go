package web_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/web"
)

// options tweak a test server.
type options struct {
	noLocal   bool
	limit     int // 0 = 1
	ports     int // size of the node port range; 0 = 10
	domain    string
	secure    bool
	github    func(callback string) *githubauth.Client
	dataFile  string
	portRange provision.PortRange
	trusted   []string
	// Issue 10 settings (0 = the defaults).
	publicURL     string
	loopbackHosts bool
	signIns       int // per hour per address
	sessions      int // per account
	tokens        int // per account
	creates       int // nodes per account per hour
}

type server struct {
	*httptest.Server
	st   *sqlstore.Store
	prov *provision.Local
}

func portRange(n int) provision.PortRange {
	first := 20000 + rand.IntN(10000)
	return provision.PortRange{First: first, Last: first + n - 1}
}

// newServer starts the web handler with SQLite and in-process nodes.
func newServer(t *testing.T, o options) *server {
	t.Helper()
	if o.limit == 0 {
		o.limit = 1
	}
	if o.ports == 0 {
		o.ports = 10
	}
	if o.dataFile == "" {
		o.dataFile = filepath.Join(t.TempDir(), "ockamhub.db")
	}
	if o.portRange.First == 0 {
		o.portRange = portRange(o.ports)
	}
	st, err := sqlstore.Open(t.Context(), o.dataFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prov, err := provision.New(provision.Config{
		Store: st, ListenHost: "127.0.0.1", Domain: o.domain, Ports: o.portRange, MaxNodesPerAccount: o.limit,
		MaxCreatesPerHour: o.creates,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := prov.Restore(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Shutdown(context.Background()) })
	s := &server{st: st, prov: prov}
	ts := httptest.NewUnstartedServer(nil)
	cfg := web.Config{Store: st, Provisioner: prov, LocalSignIn: !o.noLocal, SecureCookies: o.secure, TrustedOrigins: o.trusted,
		PublicURL: o.publicURL, LoopbackHosts: o.loopbackHosts, SignInsPerHour: o.signIns, MaxSessionsPerAccount: o.sessions, MaxTokensPerAccount: o.tokens}
	if o.github != nil {
		cfg.GitHub = o.github("http://" + ts.Listener.Addr().String() + "/auth/github/callback")
	}
	h, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = h
	ts.Start()
	t.Cleanup(ts.Close)
	s.Server = ts
	return s
}

// client is a cookie-keeping HTTP client that does not follow redirects,
// like curl -c/-b.
func (s *server) client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type response struct {
	*http.Response
	body string
}

func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp, string(b)}
}

func (s *server) postForm(t *testing.T, c *http.Client, path string, form url.Values, hdr ...string) response {
	t.Helper()
	return do(t, c, "POST", s.URL+path, strings.NewReader(form.Encode()), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

// signIn signs c in through the development sign-in, as curl would.
func (s *server) signIn(t *testing.T, c *http.Client, user string) {
	t.Helper()
	r := s.postForm(t, c, "/auth/local", url.Values{"username": {user}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard" {
		t.Fatalf("POST /auth/local as %s: got %s to %q, want 303 to /dashboard\n%s", user, r.Status, r.Header.Get("Location"), r.body)
	}
}

type apiNode struct {
	ID       int64    `json:"id"`
	Name     string   `json:"name"`
	Hostname string   `json:"hostname"`
	Port     int      `json:"port"`
	Address  string   `json:"address"`
	Route    string   `json:"route"`
	Status   string   `json:"status"`
	Reason   string   `json:"reason"`
	Services []string `json:"services"`
	Allow    []string `json:"allow"`
	Named    bool     `json:"named_forwarding"`
	FwdNames []string `json:"forwarder_names"`
	Stats    struct {
		Conns       int64  `json:"connections"`
		MessagesIn  uint64 `json:"messages_in"`
		MessagesOut uint64 `json:"messages_out"`
	} `json:"stats"`
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
	return v
}

// apiCreate creates a node through the API and returns the response.
func (s *server) apiCreate(t *testing.T, c *http.Client, name string, hdr ...string) response {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name})
	return do(t, c, "POST", s.URL+"/api/v1/nodes", strings.NewReader(string(b)), append([]string{"Content-Type", "application/json"}, hdr...)...)
}

func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: got %s, want %d %s\n%s", what, r.Status, status, http.StatusText(status), r.body)
	}
}

// wantAPIError checks an API error's status and that its message contains
// substr.
func wantAPIError(t *testing.T, what string, r response, status int, substr string) {
	t.Helper()
	wantStatus(t, what, r, status)
	e := decode[map[string]string](t, r)
	if !strings.Contains(e["error"], substr) {
		t.Fatalf("%s: error %q does not contain %q", what, e["error"], substr)
	}
}

// echo sends hello to the echo_service of the hub node at addr with the
// library and checks the reply.
func echo(t *testing.T, addr string) { t.Helper(); hubtest.Echo(t, addr) }

// element returns the unescaped text inside the element with id in an
// HTML page (for <pre id=X><code>…</code></pre>, the code's text).
func element(t *testing.T, page, id string) string {
	t.Helper()
	re := regexp.MustCompile(`(?s)id="` + regexp.QuoteMeta(id) + `"[^>]*>(?:<code>)?(.*?)(?:</code>)?</(?:pre|code|span|p|div|h1)>`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no element with id %q in the page:\n%s", id, page)
	}
	return html.UnescapeString(m[1])
}

// unescape unescapes a page so tests can look for program text.
func unescape(s string) string { return html.UnescapeString(s) }
