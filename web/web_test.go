package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/web"
)

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestLocalSignInCurl signs in the way the README tells maintainers to,
// with a POST that has no Origin or Sec-Fetch-Site header.
func TestLocalSignInCurl(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	r := s.postForm(t, c, "/auth/local", url.Values{"username": {"Alice"}})
	wantStatus(t, "POST /auth/local", r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/dashboard" {
		t.Fatalf("Location: got %q, want /dashboard", loc)
	}
	ck := cookieNamed(r.Response, "ockamhub_session")
	if ck == nil || ck.Value == "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" {
		t.Fatalf("session cookie: got %+v, want HttpOnly, SameSite=Lax, not Secure over plain HTTP, Path=/", ck)
	}
	r = do(t, c, "GET", s.URL+"/dashboard", nil)
	wantStatus(t, "GET /dashboard", r, http.StatusOK)
	if !strings.Contains(r.body, `id="who">Alice`) {
		t.Fatalf("dashboard does not name the user:\n%s", r.body)
	}
	// Names are case-insensitive: "alice" is the same account.
	c2 := s.client(t)
	s.signIn(t, c2, "alice")
	s.apiCreate(t, c, "demo")
	list := decode[struct{ Nodes []apiNode }](t, do(t, c2, "GET", s.URL+"/api/v1/nodes", nil))
	if len(list.Nodes) != 1 {
		t.Fatalf("alice sees %d nodes of Alice's, want 1 (same account)", len(list.Nodes))
	}
	// Signed in, / goes to the dashboard.
	r = do(t, c, "GET", s.URL+"/", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard" {
		t.Fatalf("GET / signed in: got %s to %q, want 303 to /dashboard", r.Status, r.Header.Get("Location"))
	}
}

func TestCrossOrigin(t *testing.T) {
	s := newServer(t, options{})
	form := url.Values{"username": {"mallory"}}
	for _, tt := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"cross-site", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"same-origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", s.URL}, http.StatusSeeOther},
		{"typed by the user", []string{"Sec-Fetch-Site", "none"}, http.StatusSeeOther},
		{"no headers (curl)", nil, http.StatusSeeOther},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := s.client(t)
			r := s.postForm(t, c, "/auth/local", form, tt.hdr...)
			wantStatus(t, "POST /auth/local", r, tt.status)
			if tt.status == http.StatusForbidden {
				if cookieNamed(r.Response, "ockamhub_session") != nil {
					t.Fatal("a refused request set a session cookie")
				}
				if !strings.Contains(r.body, "another site") {
					t.Fatalf("403 page does not explain:\n%s", r.body)
				}
			}
		})
	}
	// State-changing API calls and forms of a signed-in browser too.
	c := s.client(t)
	s.signIn(t, c, "alice")
	r := s.apiCreate(t, c, "demo", "Sec-Fetch-Site", "cross-site")
	wantAPIError(t, "cross-site POST /api/v1/nodes", r, http.StatusForbidden, "cross-origin")
	r = s.postForm(t, c, "/nodes", url.Values{"name": {"demo"}}, "Sec-Fetch-Site", "cross-site")
	wantStatus(t, "cross-site POST /nodes", r, http.StatusForbidden)
	r = s.postForm(t, c, "/auth/logout", nil, "Sec-Fetch-Site", "cross-site")
	wantStatus(t, "cross-site POST /auth/logout", r, http.StatusForbidden)
	if list := decode[struct{ Nodes []apiNode }](t, do(t, c, "GET", s.URL+"/api/v1/nodes", nil)); len(list.Nodes) != 0 {
		t.Fatalf("cross-site requests created %d nodes", len(list.Nodes))
	}
}

func TestTrustedOrigin(t *testing.T) {
	s := newServer(t, options{trusted: []string{"https://hub.example.com"}})
	form := url.Values{"username": {"alice"}}
	r := s.postForm(t, s.client(t), "/auth/local", form, "Sec-Fetch-Site", "cross-site", "Origin", "https://hub.example.com")
	wantStatus(t, "POST from the trusted origin", r, http.StatusSeeOther)
	r = s.postForm(t, s.client(t), "/auth/local", form, "Sec-Fetch-Site", "cross-site", "Origin", "http://hub.example.com")
	wantStatus(t, "POST from the trusted host over http", r, http.StatusForbidden)
	if _, err := web.New(web.Config{TrustedOrigins: []string{"not a URL"}}); err == nil {
		t.Fatal("New accepted a malformed trusted origin")
	}
}

func TestLocalSignInDisabled(t *testing.T) {
	s := newServer(t, options{noLocal: true})
	c := s.client(t)
	r := s.postForm(t, c, "/auth/local", url.Values{"username": {"alice"}})
	wantStatus(t, "POST /auth/local when disabled", r, http.StatusNotFound)
	if cookieNamed(r.Response, "ockamhub_session") != nil {
		t.Fatal("disabled local sign-in set a cookie")
	}
	r = do(t, c, "GET", s.URL+"/signin", nil)
	if strings.Contains(r.body, `action="/auth/local"`) {
		t.Fatal("sign-in page offers the disabled development sign-in")
	}
	if !strings.Contains(r.body, "No sign-in method is configured") {
		t.Fatalf("sign-in page without methods does not say so:\n%s", r.body)
	}
}

func TestSignInPageSaysDevelopment(t *testing.T) {
	s := newServer(t, options{})
	r := do(t, s.client(t), "GET", s.URL+"/", nil)
	wantStatus(t, "GET /", r, http.StatusOK)
	for _, want := range []string{`action="/auth/local"`, "For development", "no password"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("sign-in page lacks %q", want)
		}
	}
}

func TestSignInBadUsername(t *testing.T) {
	s := newServer(t, options{})
	for _, name := range []string{"", "-x", "a b", strings.Repeat("a", 40), "<script>"} {
		c := s.client(t)
		r := s.postForm(t, c, "/auth/local", url.Values{"username": {name}})
		wantStatus(t, fmt.Sprintf("sign in as %q", name), r, http.StatusBadRequest)
		if !strings.Contains(r.body, "Invalid user name") || strings.Contains(r.body, "<script>") {
			t.Fatalf("sign in as %q: page does not explain, or echoes markup:\n%s", name, r.body)
		}
		if cookieNamed(r.Response, "ockamhub_session") != nil {
			t.Fatalf("sign in as %q set a cookie", name)
		}
	}
}

func TestAPICreateListDelete(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	r := s.apiCreate(t, c, "demo")
	wantStatus(t, "POST /api/v1/nodes", r, http.StatusCreated)
	n := decode[apiNode](t, r)
	if n.ID == 0 || n.Name != "demo" || n.Hostname != "127.0.0.1" || n.Port == 0 || n.Status != "running" {
		t.Fatalf("created node: got %+v", n)
	}
	if want := fmt.Sprintf("1#127.0.0.1:%d => echo_service", n.Port); n.Route != want {
		t.Fatalf("route: got %q, want %q", n.Route, want)
	}
	if r.Header.Get("Location") != "/api/v1/nodes/"+strconv.FormatInt(n.ID, 10) {
		t.Fatalf("Location: got %q", r.Header.Get("Location"))
	}
	echo(t, n.Address)

	list := decode[struct{ Nodes []apiNode }](t, do(t, c, "GET", s.URL+"/api/v1/nodes", nil))
	if len(list.Nodes) != 1 || list.Nodes[0].ID != n.ID || list.Nodes[0].Port != n.Port {
		t.Fatalf("GET /api/v1/nodes: got %+v, want the demo node", list.Nodes)
	}
	if st := list.Nodes[0].Stats; st.MessagesIn != 1 || st.MessagesOut != 1 {
		t.Fatalf("stats after one echo: got %+v, want 1 in, 1 out", st)
	}
	nodeURL := s.URL + "/api/v1/nodes/" + strconv.FormatInt(n.ID, 10)
	wantStatus(t, "GET node", do(t, c, "GET", nodeURL, nil), http.StatusOK)
	r = do(t, c, "DELETE", nodeURL, nil)
	wantStatus(t, "DELETE node", r, http.StatusNoContent)
	wantAPIError(t, "GET deleted node", do(t, c, "GET", nodeURL, nil), http.StatusNotFound, "No such node")
	wantAPIError(t, "DELETE deleted node", do(t, c, "DELETE", nodeURL, nil), http.StatusNotFound, "No such node")
	list = decode[struct{ Nodes []apiNode }](t, do(t, c, "GET", s.URL+"/api/v1/nodes", nil))
	if len(list.Nodes) != 0 {
		t.Fatalf("GET /api/v1/nodes after delete: got %+v", list.Nodes)
	}
	// The limit counts live nodes: after a delete another may be created.
	wantStatus(t, "create after delete", s.apiCreate(t, c, "demo"), http.StatusCreated)
}

func TestAPIErrors(t *testing.T) {
	s := newServer(t, options{ports: 2})
	anon := s.client(t)
	wantAPIError(t, "GET without auth", do(t, anon, "GET", s.URL+"/api/v1/nodes", nil), http.StatusUnauthorized, "not signed in")
	wantAPIError(t, "POST without auth", s.apiCreate(t, anon, "x"), http.StatusUnauthorized, "not signed in")
	wantAPIError(t, "DELETE without auth", do(t, anon, "DELETE", s.URL+"/api/v1/nodes/1", nil), http.StatusUnauthorized, "not signed in")

	alice, bob, carol := s.client(t), s.client(t), s.client(t)
	s.signIn(t, alice, "alice")
	s.signIn(t, bob, "bob")
	s.signIn(t, carol, "carol")
	for _, name := range []string{"", "-demo", "demo-", "Demo", "de mo", "dé", strings.Repeat("a", 33), "a.b"} {
		wantAPIError(t, fmt.Sprintf("name %q", name), s.apiCreate(t, alice, name), http.StatusBadRequest, "Invalid node name")
	}
	for _, body := range []string{"", "{", `{"name": 1}`, `{"name": "a", "extra": 1}`, `{"name": "a"} {}`, `[]`} {
		r := do(t, alice, "POST", s.URL+"/api/v1/nodes", strings.NewReader(body), "Content-Type", "application/json")
		wantAPIError(t, fmt.Sprintf("body %q", body), r, http.StatusBadRequest, "JSON object")
	}
	wantStatus(t, "a 32-character name", s.apiCreate(t, alice, strings.Repeat("a", 32)), http.StatusCreated)
	wantAPIError(t, "second node at limit 1", s.apiCreate(t, alice, "second"), http.StatusConflict, "limit of 1 node per user")
	wantAPIError(t, "taken name", s.apiCreate(t, bob, strings.Repeat("a", 32)), http.StatusConflict, "taken")
	wantStatus(t, "bob's node", s.apiCreate(t, bob, "bobs"), http.StatusCreated)
	wantAPIError(t, "port range exhausted", s.apiCreate(t, carol, "carols"), http.StatusServiceUnavailable, "No port is free")
	for _, id := range []string{"0", "-1", "abc", "99999", "1.5"} {
		wantAPIError(t, "GET node "+id, do(t, alice, "GET", s.URL+"/api/v1/nodes/"+id, nil), http.StatusNotFound, "No such node")
	}
	wantAPIError(t, "unknown endpoint", do(t, alice, "GET", s.URL+"/api/v1/nope", nil), http.StatusNotFound, "no such API endpoint")
}

func TestIsolation(t *testing.T) {
	s := newServer(t, options{})
	alice, bob := s.client(t), s.client(t)
	s.signIn(t, alice, "alice")
	s.signIn(t, bob, "bob")
	n := decode[apiNode](t, s.apiCreate(t, alice, "alices"))
	id := strconv.FormatInt(n.ID, 10)

	list := decode[struct{ Nodes []apiNode }](t, do(t, bob, "GET", s.URL+"/api/v1/nodes", nil))
	if len(list.Nodes) != 0 {
		t.Fatalf("bob lists alice's nodes: %+v", list.Nodes)
	}
	wantAPIError(t, "bob GETs alice's node", do(t, bob, "GET", s.URL+"/api/v1/nodes/"+id, nil), http.StatusNotFound, "No such node")
	wantAPIError(t, "bob DELETEs alice's node", do(t, bob, "DELETE", s.URL+"/api/v1/nodes/"+id, nil), http.StatusNotFound, "No such node")
	wantStatus(t, "bob's page for alice's node", do(t, bob, "GET", s.URL+"/nodes/"+id, nil), http.StatusNotFound)
	wantStatus(t, "bob's page for alice's program", do(t, bob, "GET", s.URL+"/nodes/"+id+"/main.go", nil), http.StatusNotFound)
	wantStatus(t, "bob's form delete of alice's node", s.postForm(t, bob, "/nodes/"+id+"/delete", nil), http.StatusNotFound)
	if r := do(t, bob, "GET", s.URL+"/dashboard", nil); strings.Contains(r.body, "alices") {
		t.Fatal("bob's dashboard shows alice's node")
	}
	// Alice's node is untouched and still answers.
	wantStatus(t, "alice GETs her node", do(t, alice, "GET", s.URL+"/api/v1/nodes/"+id, nil), http.StatusOK)
	echo(t, n.Address)
}

func TestBearerToken(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	r := s.postForm(t, c, "/settings/tokens", url.Values{"name": {"laptop"}})
	wantStatus(t, "create token", r, http.StatusOK)
	tok := element(t, r.body, "new-token")
	if !strings.HasPrefix(tok, "ohp_") {
		t.Fatalf("token %q lacks the ohp_ prefix", tok)
	}
	// The settings page lists it by name and never shows it again.
	r = do(t, c, "GET", s.URL+"/settings", nil)
	if !strings.Contains(r.body, "laptop") || strings.Contains(r.body, tok) {
		t.Fatalf("settings page: want the token's name and not its value:\n%s", r.body)
	}

	api := &http.Client{} // no cookies
	auth := []string{"Authorization", "Bearer " + tok}
	created := s.apiCreate(t, api, "tokened", auth...)
	wantStatus(t, "POST with the token", created, http.StatusCreated)
	list := decode[struct{ Nodes []apiNode }](t, do(t, api, "GET", s.URL+"/api/v1/nodes", nil, auth...))
	if len(list.Nodes) != 1 || list.Nodes[0].Name != "tokened" {
		t.Fatalf("GET with the token: got %+v", list.Nodes)
	}
	// A bad token is refused even when a good cookie comes along.
	r = do(t, c, "GET", s.URL+"/api/v1/nodes", nil, "Authorization", "Bearer ohp_FORGED")
	wantAPIError(t, "bad token with a cookie", r, http.StatusUnauthorized, "invalid API token")
	wantAPIError(t, "Basic auth", do(t, api, "GET", s.URL+"/api/v1/nodes", nil, "Authorization", "Basic YTpi"), http.StatusUnauthorized, "invalid API token")

	// Deleting the token revokes it.
	m := regexp.MustCompile(`action="/settings/tokens/(\d+)/delete"`).FindStringSubmatch(do(t, c, "GET", s.URL+"/settings", nil).body)
	if m == nil {
		t.Fatal("no delete form for the token")
	}
	wantStatus(t, "delete token", s.postForm(t, c, "/settings/tokens/"+m[1]+"/delete", nil), http.StatusSeeOther)
	wantAPIError(t, "revoked token", do(t, api, "GET", s.URL+"/api/v1/nodes", nil, auth...), http.StatusUnauthorized, "invalid API token")
	// Another user cannot delete (or learn about) a token of alice's.
	bob := s.client(t)
	s.signIn(t, bob, "bob")
	wantStatus(t, "bob deletes a token id", s.postForm(t, bob, "/settings/tokens/"+m[1]+"/delete", nil), http.StatusNotFound)
}

func TestForgedCookie(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	u, _ := url.Parse(s.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "ockamhub_session", Value: "FORGEDFORGEDFORGEDFORGED12", Path: "/"}})
	r := do(t, c, "GET", s.URL+"/dashboard", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("dashboard with a forged cookie: got %s to %q, want 303 to /signin", r.Status, r.Header.Get("Location"))
	}
	if ck := cookieNamed(r.Response, "ockamhub_session"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("forged cookie not cleared: got %+v", ck)
	}
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "ockamhub_session", Value: "FORGEDFORGEDFORGEDFORGED12", Path: "/"}})
	wantAPIError(t, "API with a forged cookie", do(t, c, "GET", s.URL+"/api/v1/nodes", nil), http.StatusUnauthorized, "not signed in")
	r = do(t, c, "GET", s.URL+"/", nil)
	wantStatus(t, "home with a forged cookie", r, http.StatusOK)
	if !strings.Contains(r.body, "Sign in") {
		t.Fatal("home with a forged cookie is not the sign-in page")
	}
}

func TestSignOut(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	u, _ := url.Parse(s.URL)
	old := c.Jar.Cookies(u)
	r := s.postForm(t, c, "/auth/logout", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("sign out: got %s to %q", r.Status, r.Header.Get("Location"))
	}
	// The old cookie no longer works: the session is gone on the server.
	c2 := s.client(t)
	c2.Jar.SetCookies(u, old)
	wantAPIError(t, "API with a signed-out cookie", do(t, c2, "GET", s.URL+"/api/v1/nodes", nil), http.StatusUnauthorized, "not signed in")
}

func TestSecureCookies(t *testing.T) {
	s := newServer(t, options{secure: true})
	r := s.postForm(t, s.client(t), "/auth/local", url.Values{"username": {"alice"}})
	ck := cookieNamed(r.Response, "__Host-ockamhub_session")
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("secure session cookie: got %+v (all: %v), want __Host- prefix, Secure, HttpOnly, Path=/", ck, r.Cookies())
	}
}

func TestNotFound(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	r := do(t, c, "GET", s.URL+"/nope", nil)
	wantStatus(t, "GET /nope", r, http.StatusNotFound)
	if !strings.Contains(r.body, "There is no page at /nope") || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("404 page: %s\n%s", r.Header.Get("Content-Type"), r.body)
	}
	s.signIn(t, c, "alice")
	for _, p := range []string{"/nodes/abc", "/nodes/0", "/nodes/12345", "/nodes/1/nope"} {
		wantStatus(t, "GET "+p, do(t, c, "GET", s.URL+p, nil), http.StatusNotFound)
	}
	// Signed out, pages send people to sign in.
	r = do(t, s.client(t), "GET", s.URL+"/nodes/1", nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/signin" {
		t.Fatalf("signed-out node page: got %s to %q", r.Status, r.Header.Get("Location"))
	}
}

// TestFormFlow creates a node with the dashboard form and checks the
// confirmation page and the dashboard.
func TestFormFlow(t *testing.T) {
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	browser := []string{"Sec-Fetch-Site", "same-origin", "Origin", s.URL}

	r := s.postForm(t, c, "/nodes", url.Values{"name": {"Bad Name"}}, browser...)
	wantStatus(t, "form with a bad name", r, http.StatusBadRequest)
	if !strings.Contains(element(t, r.body, "error"), "Invalid node name") {
		t.Fatal("no error message for a bad name")
	}
	r = s.postForm(t, c, "/nodes", url.Values{"name": {"demo"}}, browser...)
	wantStatus(t, "create with the form", r, http.StatusSeeOther)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, "/nodes/") {
		t.Fatalf("create redirects to %q, want /nodes/ID", loc)
	}
	page := do(t, c, "GET", s.URL+loc, nil)
	wantStatus(t, "confirmation page", page, http.StatusOK)
	addr := element(t, page.body, "address")
	host, port := element(t, page.body, "hostname"), element(t, page.body, "port")
	if addr != host+":"+port || host != "127.0.0.1" {
		t.Fatalf("address %q, hostname %q, port %q", addr, host, port)
	}
	for _, want := range []string{
		"Your node <em>demo</em> is running",
		`ockamhub send --route "1#` + addr + ` => echo_service" hello`,
		"1#" + addr + " => echo_service",
		`let hub = "` + addr + `";`,
		`Route::new().append_t(TCP, hub).append("echo_service")`,
		`const hub = "` + addr + `"`,
		// Secure channels: how to pin the listener's identity.
		"ockamhub secure-channel listen --hub " + addr,
		`ockamhub send --secure --peer IDENTITY --route "FORWARDING-ADDRESS => secure_channel" hello`,
	} {
		if !strings.Contains(unescape(page.body), want) {
			t.Errorf("confirmation page lacks %q", want)
		}
	}
	echo(t, addr)

	r = s.postForm(t, c, "/nodes", url.Values{"name": {"second"}}, browser...)
	wantStatus(t, "second node at limit", r, http.StatusConflict)
	if !strings.Contains(element(t, r.body, "error"), "limit of 1 node per user") {
		t.Fatal("no limit message")
	}

	dash := do(t, c, "GET", s.URL+"/dashboard", nil)
	for _, want := range []string{`<meta http-equiv="refresh" content="5">`, "demo", addr, "echo_service, forwarding_service", `class="status running"`, "1 / 1"} {
		if !strings.Contains(dash.body, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, dash.body)
		}
	}
	r = s.postForm(t, c, loc+"/delete", nil, browser...)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard" {
		t.Fatalf("delete: got %s to %q", r.Status, r.Header.Get("Location"))
	}
	if dash := do(t, c, "GET", s.URL+"/dashboard", nil); strings.Contains(dash.body, addr) || strings.Contains(dash.body, "http-equiv") {
		t.Fatal("dashboard still shows the deleted node, or refreshes with no nodes")
	}
}

func TestHostnameDomain(t *testing.T) {
	s := newServer(t, options{domain: "hub.example.com"})
	c := s.client(t)
	s.signIn(t, c, "alice")
	n := decode[apiNode](t, s.apiCreate(t, c, "demo"))
	if n.Hostname != "demo.hub.example.com" || n.Address != fmt.Sprintf("demo.hub.example.com:%d", n.Port) {
		t.Fatalf("node with a domain: got hostname %q, address %q", n.Hostname, n.Address)
	}
	page := unescape(do(t, c, "GET", s.URL+"/nodes/"+strconv.FormatInt(n.ID, 10), nil).body)
	if !strings.Contains(page, "IP addresses only") {
		t.Error("Rust snippet does not warn that ockam 0.8 needs an IP address")
	}
}
