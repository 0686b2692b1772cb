package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/githubauth/fakegithub"
)

func githubServer(t *testing.T) (*server, *fakegithub.Server) {
	t.Helper()
	gh := fakegithub.New()
	t.Cleanup(gh.Close)
	s := newServer(t, options{noLocal: true, github: func(callback string) *githubauth.Client {
		c, err := githubauth.New(gh.Config(callback))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}})
	return s, gh
}

// follow does GET u and follows redirects by hand (keeping cookies),
// returning the final response and the URLs visited.
func follow(t *testing.T, c *http.Client, u string) (response, []string) {
	t.Helper()
	var seen []string
	for range 10 {
		seen = append(seen, u)
		r := do(t, c, "GET", u, nil)
		loc := r.Header.Get("Location")
		if loc == "" || r.StatusCode < 300 || r.StatusCode > 399 {
			return r, seen
		}
		next, err := r.Request.URL.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		u = next.String()
	}
	t.Fatalf("too many redirects: %v", seen)
	return response{}, nil
}

func TestGitHubSignIn(t *testing.T) {
	s, gh := githubServer(t)
	gh.SignInAs("hubber", 4242)
	c := s.client(t)
	page := do(t, c, "GET", s.URL+"/signin", nil)
	if !strings.Contains(page.body, `href="/auth/github"`) || strings.Contains(page.body, `action="/auth/local"`) {
		t.Fatalf("sign-in page: want GitHub and no development sign-in:\n%s", page.body)
	}
	r, seen := follow(t, c, s.URL+"/auth/github")
	wantStatus(t, "after GitHub sign-in", r, http.StatusOK)
	if last := seen[len(seen)-1]; last != s.URL+"/dashboard" {
		t.Fatalf("sign-in ended at %s, want the dashboard (visited %v)", last, seen)
	}
	if !strings.Contains(r.body, `id="who">hubber`) {
		t.Fatalf("dashboard does not name hubber:\n%s", r.body)
	}
	// The authorize request carried a PKCE challenge and a state, and not
	// the verifier.
	au, _ := url.Parse(seen[1])
	if q := au.Query(); q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("code_verifier") != "" {
		t.Fatalf("authorize URL %s: want S256 challenge and state, no verifier", au)
	}
	// The same GitHub id is the same account, even after a rename.
	wantStatus(t, "create", s.apiCreate(t, c, "demo"), http.StatusCreated)
	gh.SignInAs("hubber-renamed", 4242)
	c2 := s.client(t)
	r, _ = follow(t, c2, s.URL+"/auth/github")
	if !strings.Contains(r.body, "hubber-renamed") || !strings.Contains(r.body, "demo") {
		t.Fatalf("renamed user's dashboard: want the new login and the node:\n%s", r.body)
	}
}

func TestGitHubWrongState(t *testing.T) {
	s, _ := githubServer(t)
	c := s.client(t)
	r := do(t, c, "GET", s.URL+"/auth/github", nil)
	wantStatus(t, "GET /auth/github", r, http.StatusFound)
	// Let the fake GitHub approve, then tamper with the state on the way back.
	r = do(t, c, "GET", r.Header.Get("Location"), nil)
	wantStatus(t, "authorize", r, http.StatusFound)
	back, _ := url.Parse(r.Header.Get("Location"))
	q := back.Query()
	q.Set("state", "ATTACKERSTATE")
	back.RawQuery = q.Encode()
	r = do(t, c, "GET", back.String(), nil)
	wantStatus(t, "callback with a wrong state", r, http.StatusBadRequest)
	if !strings.Contains(r.body, "wrong or expired state") {
		t.Fatalf("wrong-state page does not explain:\n%s", r.body)
	}
	for _, ck := range r.Cookies() {
		if strings.Contains(ck.Name, "session") && ck.Value != "" {
			t.Fatalf("wrong state set a session cookie %v", ck)
		}
	}
	wantAPIError(t, "API after a wrong state", do(t, c, "GET", s.URL+"/api/v1/nodes", nil), http.StatusUnauthorized, "not signed in")
	// The state cookie was spent: replaying the right state fails too.
	r = do(t, c, "GET", s.URL+"/auth/github/callback?code=abc&state=x", nil)
	wantStatus(t, "callback without a sign-in in progress", r, http.StatusBadRequest)
	// An error from GitHub (the user said no) is shown.
	r = do(t, c, "GET", s.URL+"/auth/github/callback?error=access_denied&error_description=The+user+has+denied+your+application+access.", nil)
	wantStatus(t, "callback with an error", r, http.StatusBadRequest)
	if !strings.Contains(r.body, "denied") {
		t.Fatalf("denied page does not explain:\n%s", r.body)
	}
}

func TestGitHubNotConfigured(t *testing.T) {
	s := newServer(t, options{})
	wantStatus(t, "GET /auth/github", do(t, s.client(t), "GET", s.URL+"/auth/github", nil), http.StatusNotFound)
}
