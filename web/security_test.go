package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

// withHost sets the request's Host header (what a browser sends for a
// rebound name).
func withHost(t *testing.T, c *http.Client, method, u, host string, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
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

// noAccounts fails if any account exists (IDs start at 1 and are never
// reused, so account 1 exists once anyone has signed in).
func noAccounts(t *testing.T, s *server, after string) {
	t.Helper()
	if a, err := s.st.Account(t.Context(), 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: account %+v exists (%v), want none", after, a, err)
	}
}

// TestDNSRebinding reproduces finding 4: a page on evil.example whose name
// resolves to 127.0.0.1 sends requests with Host: evil.example and a
// matching Origin. On the old code they signed in, listed nodes and
// created an API token; now every route answers 421.
func TestDNSRebinding(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    options
		good []string // Host values served
		bad  []string // Host values refused with 421
	}{
		{"default (loopback only)", options{}, []string{"127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:9", "app.localhost"}, []string{"evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.1"}},
		{"public URL behind a proxy", options{publicURL: "https://hub.example.com"}, []string{"hub.example.com", "HUB.example.com:443"}, []string{"evil.example", "hub.example.com:8443", "localhost", "127.0.0.1"}},
		{"loopback public URL", options{publicURL: "http://127.0.0.1:8080", loopbackHosts: true}, []string{"127.0.0.1:8080", "localhost:8080", "[::1]"}, []string{"evil.example:8080", "hub.example.com"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.o)
			c := s.client(t)
			for _, host := range tt.bad {
				origin := "http://" + host
				for _, rq := range []struct{ method, path, body, ctype string }{
					{"POST", "/auth/local", "username=victim", "application/x-www-form-urlencoded"},
					{"GET", "/signin", "", ""},
					{"GET", "/dashboard", "", ""},
					{"GET", "/api/v1/nodes", "", ""},
					{"POST", "/api/v1/nodes", `{"name":"evil"}`, "application/json"},
					{"POST", "/settings/tokens", "name=stolen", "application/x-www-form-urlencoded"},
					{"GET", "/static/style.css", "", ""},
					{"GET", "/auth/github/callback?error=x", "", ""},
					{"PUT", "/nope", "", ""},
				} {
					r := withHost(t, c, rq.method, s.URL+rq.path, host, rq.body, "Origin", origin, "Content-Type", rq.ctype, "Sec-Fetch-Site", "same-origin")
					wantStatus(t, rq.method+" "+rq.path+" with Host "+host, r, http.StatusMisdirectedRequest)
					if strings.Contains(r.body, host) {
						t.Fatalf("421 body repeats the host: %s", r.body)
					}
				}
			}
			noAccounts(t, s, "rebound sign-ins")
			for _, host := range tt.good {
				r := withHost(t, s.client(t), "GET", s.URL+"/signin", host, "")
				wantStatus(t, "GET /signin with Host "+host, r, http.StatusOK)
			}
		})
	}
}

// TestMethodNotAllowed reproduces finding 11: wrong methods got 404.
func TestMethodNotAllowed(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	for _, tt := range []struct{ method, path, allow string }{
		{"PUT", "/dashboard", "GET, HEAD"},
		{"POST", "/signin", "GET, HEAD"},
		{"GET", "/auth/local", "POST"},
		{"DELETE", "/api/v1/nodes", "GET, HEAD, POST"},
		{"POST", "/api/v1/nodes/7", "GET, HEAD, PATCH, DELETE"},
		{"GET", "/nodes/7/delete", "POST"},
	} {
		r := do(t, c, tt.method, s.URL+tt.path, nil)
		wantStatus(t, tt.method+" "+tt.path, r, http.StatusMethodNotAllowed)
		if got := r.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
	wantStatus(t, "GET /nope", do(t, c, "GET", s.URL+"/nope", nil), http.StatusNotFound)
	wantStatus(t, "PUT /nope", do(t, c, "PUT", s.URL+"/nope", nil), http.StatusNotFound)
	wantStatus(t, "PUT /api/nope", do(t, c, "PUT", s.URL+"/api/nope", nil), http.StatusNotFound)
}

// TestStaticNoListing reproduces finding 11: /static/ listed its directory.
func TestStaticNoListing(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	for _, p := range []string{"/static/", "/static", "/static/./"} {
		r := do(t, c, "GET", s.URL+p, nil)
		if r.StatusCode == http.StatusOK || strings.Contains(r.body, "style.css") {
			t.Fatalf("GET %s: %s lists the directory:\n%s", p, r.Status, r.body)
		}
	}
	wantStatus(t, "GET /static/style.css", do(t, c, "GET", s.URL+"/static/style.css", nil), http.StatusOK)
}

// TestExactJSONKeys reproduces finding 11: {"name":"x","NAME":"y"} created
// y, because encoding/json matches keys case-insensitively.
func TestExactJSONKeys(t *testing.T) {
	s := newServer(t, options{limit: 5})
	c := s.client(t)
	s.signIn(t, c, "alice")
	for _, body := range []string{
		`{"name":"x","NAME":"y"}`,
		`{"NAME":"y"}`,
		`{"Name":"y"}`,
		`{"name":"x","name":"y"}`,
		`{"name":"x"} {"name":"y"}`,
		`["y"]`,
		`{}`,
	} {
		r := do(t, c, "POST", s.URL+"/api/v1/nodes", strings.NewReader(body), "Content-Type", "application/json")
		wantStatus(t, "POST "+body, r, http.StatusBadRequest)
	}
	ns, err := s.st.AllNodes(t.Context())
	if err != nil || len(ns) != 0 {
		t.Fatalf("nodes after refused bodies: %v, %v; want none", ns, err)
	}
	wantStatus(t, "exact key", s.apiCreate(t, c, "x"), http.StatusCreated)
}

// TestOAuthErrorText reproduces finding 10: the sign-in page showed the
// provider's error_description as given, usable for phishing.
func TestOAuthErrorText(t *testing.T) {
	s, _ := githubServer(t)
	c := s.client(t)
	for _, tt := range []struct{ code, want string }{
		{"access_denied", "error code: access_denied"},
		{"Visit http://evil.example", "error code: unknown"},
		{"<b>x</b>", "error code: unknown"},
	} {
		q := url.Values{"error": {tt.code}, "error_description": {"Visit http://evil.example to re-verify"}}
		r := do(t, c, "GET", s.URL+"/auth/github/callback?"+q.Encode(), nil)
		wantStatus(t, "callback with error "+tt.code, r, http.StatusBadRequest)
		if strings.Contains(r.body, "evil.example") || strings.Contains(r.body, "re-verify") {
			t.Fatalf("the provider's text is on the page:\n%s", r.body)
		}
		if !strings.Contains(r.body, tt.want) {
			t.Fatalf("page does not say %q:\n%s", tt.want, r.body)
		}
	}
}

// TestGitHubLoginBounded reproduces finding 11: a 20,000-character login
// was stored.
func TestGitHubLoginBounded(t *testing.T) {
	s, gh := githubServer(t)
	for _, login := range []string{strings.Repeat("a", 20000), strings.Repeat("a", 40), "<script>", "-x"} {
		gh.SignInAs(login, 99)
		r, _ := follow(t, s.client(t), s.URL+"/auth/github")
		wantStatus(t, "sign-in with login of "+strconv.Itoa(len(login))+" bytes", r, http.StatusBadGateway)
	}
	noAccounts(t, s, "sign-ins with bad logins")
	// 39 characters, GitHub's longest, are fine.
	gh.SignInAs(strings.Repeat("b", githubauth.MaxLoginLen), 100)
	r, _ := follow(t, s.client(t), s.URL+"/auth/github")
	wantStatus(t, "39-character login", r, http.StatusOK)
}

// TestSignInRateLimit reproduces finding 7: 2,000 sign-ins in 6.6 s made
// 2,011 accounts. Now one address gets a burst, then 429 with Retry-After
// and a plain page.
func TestSignInRateLimit(t *testing.T) {
	s := newServer(t, options{signIns: 60})
	created := 0
	var last response
	for i := range 100 {
		last = s.postForm(t, s.client(t), "/auth/local", url.Values{"username": {fmt.Sprint("bot", i)}})
		if last.StatusCode == http.StatusSeeOther {
			created++
		}
	}
	if created > 10+1 {
		t.Fatalf("100 sign-ins from one address made %d accounts, want at most the burst of 10 (+1 refilled)", created)
	}
	wantStatus(t, "sign-in over the limit", last, http.StatusTooManyRequests)
	ra, err := strconv.Atoi(last.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q, want seconds", last.Header.Get("Retry-After"))
	}
	if !strings.Contains(last.body, "Too many sign-ins from your address") {
		t.Fatalf("429 page does not say so plainly:\n%s", last.body)
	}
}

// TestSessionLimit reproduces finding 7: one user got 1,000 live 30-day
// sessions. Now the oldest ones end.
func TestSessionLimit(t *testing.T) {
	s := newServer(t, options{signIns: -1, sessions: 3})
	var clients []*http.Client
	for range 6 {
		c := s.client(t)
		s.signIn(t, c, "alice")
		clients = append(clients, c)
	}
	for i, c := range clients {
		r := do(t, c, "GET", s.URL+"/dashboard", nil)
		live := r.StatusCode == http.StatusOK
		if want := i >= 3; live != want {
			t.Fatalf("session %d of 6 (limit 3): live %v, want %v", i+1, live, want)
		}
	}
}

// TestTokenLimit reproduces finding 7: tokens per account were unbounded.
func TestTokenLimit(t *testing.T) {
	s := newServer(t, options{tokens: 3})
	c := s.client(t)
	s.signIn(t, c, "alice")
	for i := range 3 {
		wantStatus(t, fmt.Sprint("token ", i+1), s.postForm(t, c, "/settings/tokens", url.Values{"name": {"t"}}), http.StatusOK)
	}
	r := s.postForm(t, c, "/settings/tokens", url.Values{"name": {"t"}})
	wantStatus(t, "fourth token", r, http.StatusTooManyRequests)
	if !strings.Contains(r.body, "You have 3 API tokens, the most allowed") {
		t.Fatalf("page does not say so plainly:\n%s", r.body)
	}
	a, err := s.st.UpsertAccount(t.Context(), store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.st.Tokens(t.Context(), a.ID); len(ts) != 3 {
		t.Fatalf("%d tokens stored, want 3", len(ts))
	}
}

// TestCreateRateLimit: node creations per account per hour, 429 with
// Retry-After in the API and plain words on the dashboard.
func TestCreateRateLimit(t *testing.T) {
	s := newServer(t, options{creates: 2})
	c := s.client(t)
	s.signIn(t, c, "alice")
	for i := range 2 {
		n := decode[apiNode](t, s.apiCreate(t, c, "churn"))
		wantStatus(t, fmt.Sprint("delete ", i), do(t, c, "DELETE", s.URL+"/api/v1/nodes/"+strconv.FormatInt(n.ID, 10), nil), http.StatusNoContent)
	}
	r := s.apiCreate(t, c, "churn")
	wantAPIError(t, "third creation in an hour", r, http.StatusTooManyRequests, "in the last hour")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	p := s.postForm(t, c, "/nodes", url.Values{"name": {"churn"}})
	wantStatus(t, "dashboard creation over the limit", p, http.StatusTooManyRequests)
	if !strings.Contains(unescape(p.body), "You have created 2 nodes in the last hour") {
		t.Fatalf("dashboard does not say so plainly:\n%s", p.body)
	}
}

// TestNodeSettingsAPI: the allow-list and named forwarding are stored per
// node, returned by GET, changed by PATCH (exact keys), per owner only;
// forwarder tokens are returned once and stored hashed.
func TestNodeSettingsAPI(t *testing.T) {
	s := newServer(t, options{})
	alice, bob := s.client(t), s.client(t)
	s.signIn(t, alice, "alice")
	s.signIn(t, bob, "bob")
	n := decode[apiNode](t, s.apiCreate(t, alice, "demo"))
	if n.Allow == nil || len(n.Allow) != 0 || n.Named {
		t.Fatalf("new node: allow %v, named %v; want [] and false", n.Allow, n.Named)
	}
	u := s.URL + "/api/v1/nodes/" + strconv.FormatInt(n.ID, 10)
	patch := func(c *http.Client, body string) response {
		return do(t, c, "PATCH", u, strings.NewReader(body), "Content-Type", "application/json")
	}
	r := patch(alice, `{"allow": ["203.0.113.7/24", "127.0.0.1"]}`)
	wantStatus(t, "PATCH allow", r, http.StatusOK)
	if got := decode[apiNode](t, r).Allow; strings.Join(got, ",") != "203.0.113.0/24,127.0.0.1/32" {
		t.Fatalf("PATCH allow: got %v", got)
	}
	if got := decode[apiNode](t, do(t, alice, "GET", u, nil)).Allow; strings.Join(got, ",") != "203.0.113.0/24,127.0.0.1/32" {
		t.Fatalf("GET after PATCH: allow %v", got)
	}
	wantAPIError(t, "bad CIDR", patch(alice, `{"allow": ["203.0.113.0/33"]}`), http.StatusBadRequest, "not a network")
	wantStatus(t, "case-variant key", patch(alice, `{"Allow": []}`), http.StatusBadRequest)
	wantStatus(t, "duplicate key", patch(alice, `{"allow": [], "allow": ["10.0.0.0/8"]}`), http.StatusBadRequest)
	wantStatus(t, "another user's node", patch(bob, `{"allow": []}`), http.StatusNotFound)
	r = patch(alice, `{"named_forwarding": true}`)
	wantStatus(t, "PATCH named_forwarding", r, http.StatusOK)
	if got := decode[apiNode](t, r); !got.Named || len(got.Allow) != 2 {
		t.Fatalf("PATCH named_forwarding: got %+v", got)
	}
	tr := do(t, alice, "POST", u+"/forwarder-tokens", strings.NewReader(`{"name":"printer"}`), "Content-Type", "application/json")
	wantStatus(t, "POST forwarder token", tr, http.StatusCreated)
	tok := decode[struct {
		Token string `json:"token"`
	}](t, tr).Token
	if len(tok) < 16 {
		t.Fatalf("token %q", tok)
	}
	hashes, err := s.st.NodeForwarderTokens(t.Context(), n.ID)
	if err != nil || hashes["printer"] != store.HashSecret(tok) {
		t.Fatalf("stored tokens %v, %v; want the hash of the returned token", hashes, err)
	}
	if got := decode[apiNode](t, do(t, alice, "GET", u, nil)).FwdNames; strings.Join(got, ",") != "printer" {
		t.Fatalf("forwarder names %v", got)
	}
	if strings.Contains(do(t, alice, "GET", u, nil).body, tok) {
		t.Fatal("GET shows the token again")
	}
	wantStatus(t, "bob posts a token on alice's node", do(t, bob, "POST", u+"/forwarder-tokens", strings.NewReader(`{"name":"evil"}`), "Content-Type", "application/json"), http.StatusNotFound)
	wantStatus(t, "bad forwarder name", do(t, alice, "POST", u+"/forwarder-tokens", strings.NewReader(`{"name":"a b"}`), "Content-Type", "application/json"), http.StatusBadRequest)
	wantStatus(t, "bob deletes alice's token", do(t, bob, "DELETE", u+"/forwarder-tokens/printer", nil), http.StatusNotFound)
	wantStatus(t, "delete token", do(t, alice, "DELETE", u+"/forwarder-tokens/printer", nil), http.StatusNoContent)
	wantStatus(t, "delete token again", do(t, alice, "DELETE", u+"/forwarder-tokens/printer", nil), http.StatusNotFound)
	// Forwarder tokens per node are bounded.
	for i := range provision.MaxForwarderTokens {
		wantStatus(t, fmt.Sprint("forwarder token ", i+1), do(t, alice, "POST", u+"/forwarder-tokens", strings.NewReader(fmt.Sprintf(`{"name":"n%d"}`, i)), "Content-Type", "application/json"), http.StatusCreated)
	}
	wantAPIError(t, "forwarder token over the limit", do(t, alice, "POST", u+"/forwarder-tokens", strings.NewReader(`{"name":"more"}`), "Content-Type", "application/json"), http.StatusConflict, "the most allowed")
}

// TestNodeSettingsPage: the node page shows and edits the allow-list and
// named forwarding.
func TestNodeSettingsPage(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	n := decode[apiNode](t, s.apiCreate(t, c, "demo"))
	path := "/nodes/" + strconv.FormatInt(n.ID, 10)
	page := do(t, c, "GET", s.URL+path, nil)
	if !strings.Contains(page.body, "Open to everyone.") {
		t.Fatalf("node page does not show the open allow-list:\n%s", page.body)
	}
	r := s.postForm(t, c, path+"/allow", url.Values{"allow": {"203.0.113.0/24\r\n198.51.100.9"}})
	wantStatus(t, "save allow-list", r, http.StatusSeeOther)
	page = do(t, c, "GET", s.URL+path, nil)
	if got := element(t, page.body, "allow-state"); got != "Only the networks listed may connect." || !strings.Contains(page.body, "203.0.113.0/24\n198.51.100.9/32") {
		t.Fatalf("node page after saving: state %q\n%s", got, page.body)
	}
	r = s.postForm(t, c, path+"/allow", url.Values{"allow": {"nonsense"}})
	wantStatus(t, "bad allow-list", r, http.StatusBadRequest)
	if !strings.Contains(unescape(r.body), `"nonsense" is not a network`) {
		t.Fatalf("bad allow-list page:\n%s", r.body)
	}
	wantStatus(t, "named forwarding on", s.postForm(t, c, path+"/forwarding", url.Values{"named_forwarding": {"on"}}), http.StatusSeeOther)
	r = s.postForm(t, c, path+"/forwarder-tokens", url.Values{"name": {"printer"}})
	wantStatus(t, "make a forwarder token", r, http.StatusOK)
	tok := element(t, r.body, "new-forwarder-token")
	hashes, _ := s.st.NodeForwarderTokens(t.Context(), n.ID)
	if hashes["printer"] != store.HashSecret(tok) {
		t.Fatalf("page token %q is not the stored one", tok)
	}
	got := decode[apiNode](t, do(t, c, "GET", s.URL+"/api/v1/nodes/"+strconv.FormatInt(n.ID, 10), nil))
	if !got.Named || len(got.Allow) != 2 {
		t.Fatalf("API after page edits: %+v", got)
	}
}

// echoErr dials the hub node at addr and echoes once, within a second.
func echoErr(t *testing.T, addr string) error {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	return hubtest.TryEcho(ctx, addr)
}

// TestAllowListAPIEndToEnd: PATCH /api/v1/nodes/{id} {"allow": [...]}
// refuses a real connection from 127.0.0.1 at once, and emptying it opens
// the node again.
func TestAllowListAPIEndToEnd(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	n := decode[apiNode](t, s.apiCreate(t, c, "demo"))
	if err := echoErr(t, n.Address); err != nil {
		t.Fatalf("open node: %v", err)
	}
	u := s.URL + "/api/v1/nodes/" + strconv.FormatInt(n.ID, 10)
	wantStatus(t, "PATCH allow", do(t, c, "PATCH", u, strings.NewReader(`{"allow":["203.0.113.0/24"]}`), "Content-Type", "application/json"), http.StatusOK)
	if err := echoErr(t, n.Address); err == nil {
		t.Fatal("a connection from 127.0.0.1 was served after the owner allowed only 203.0.113.0/24")
	}
	wantStatus(t, "PATCH allow 127.0.0.1", do(t, c, "PATCH", u, strings.NewReader(`{"allow":["127.0.0.1/32"]}`), "Content-Type", "application/json"), http.StatusOK)
	if err := echoErr(t, n.Address); err != nil {
		t.Fatalf("allowed again: %v", err)
	}
}

// TestFailedNodeShown: a node that could not start (its port taken while
// the server was down) is shown failed, with the reason and the next
// retry time, on its page and in the API (finding 9).
func TestFailedNodeShown(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	pr := portRange(3)
	first := newServer(t, options{dataFile: file, portRange: pr})
	c := first.client(t)
	first.signIn(t, c, "alice")
	n := decode[apiNode](t, first.apiCreate(t, c, "demo"))
	first.Close()
	if err := first.prov.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	first.st.Close()
	squat, err := net.Listen("tcp", n.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer squat.Close()
	s := newServer(t, options{dataFile: file, portRange: pr})
	c = s.client(t)
	s.signIn(t, c, "alice")
	r := do(t, c, "GET", s.URL+"/api/v1/nodes/"+strconv.FormatInt(n.ID, 10), nil)
	got := decode[struct {
		Status    string     `json:"status"`
		Reason    string     `json:"reason"`
		NextRetry *time.Time `json:"next_retry"`
	}](t, r)
	if got.Status != "failed" || !strings.Contains(got.Reason, "address already in use") || got.NextRetry == nil {
		t.Fatalf("API for a node whose port is taken: %s", r.body)
	}
	page := do(t, c, "GET", s.URL+"/nodes/"+strconv.FormatInt(n.ID, 10), nil)
	if !strings.Contains(element(t, page.body, "reason"), "address already in use") || !strings.Contains(element(t, page.body, "next-retry"), "next try at") {
		t.Fatalf("node page does not show the reason and next retry:\n%s", page.body)
	}
}

// TestGitHubRefusalText: when GitHub refuses the code exchange, the page
// gives a fixed sentence and the error code, not GitHub's description.
func TestGitHubRefusalText(t *testing.T) {
	s, _ := githubServer(t)
	c := s.client(t)
	// Start a sign-in so the state cookie is set, then come back with a
	// code GitHub does not know.
	start := do(t, c, "GET", s.URL+"/auth/github", nil)
	auth, err := url.Parse(start.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	state := auth.Query().Get("state")
	r := do(t, c, "GET", s.URL+"/auth/github/callback?code=forged&state="+url.QueryEscape(state), nil)
	wantStatus(t, "callback with a forged code", r, http.StatusBadGateway)
	if !strings.Contains(r.body, "error code: bad_verification_code") || strings.Contains(r.body, "incorrect or expired") {
		t.Fatalf("refusal page shows the description or lacks the code:\n%s", r.body)
	}
}

// TestTokenLimitTwoInstances: two instances sharing one database, each
// taking token creations for the same account at once, together store no
// more than the per-account limit (the check was process-local).
func TestTokenLimitTwoInstances(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	a := newServer(t, options{tokens: 3, dataFile: file})
	b := newServer(t, options{tokens: 3, dataFile: file})
	c := a.client(t)
	a.signIn(t, c, "alice") // the session is in the shared database: b knows it too
	const n = 12
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			resp, err := c.PostForm(s.URL+"/settings/tokens", url.Values{"name": {"t"}})
			if err != nil {
				errs[i] = err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Fatalf("request %d: %v", i, errs[i])
		case codes[i] == http.StatusOK:
			ok++
		case codes[i] != http.StatusTooManyRequests:
			t.Fatalf("request %d: status %d", i, codes[i])
		}
	}
	acct, err := a.st.UpsertAccount(t.Context(), store.ProviderLocal, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := a.st.Tokens(t.Context(), acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 3 || len(ts) != 3 {
		t.Fatalf("%d creations succeeded, %d tokens stored; want 3 (the limit)", ok, len(ts))
	}
}
