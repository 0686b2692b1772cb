package githubauth_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/githubauth/fakegithub"
)

const callback = "http://127.0.0.1:1/auth/github/callback"

// authorize follows AuthCodeURL to the fake and returns the code and state
// it redirects back with.
func authorize(t *testing.T, c *githubauth.Client, state, verifier string) (code, gotState string) {
	t.Helper()
	u := c.AuthCodeURL(state, verifier)
	if strings.Contains(u, verifier) {
		t.Fatalf("AuthCodeURL %s contains the verifier", u)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: got %s, want 302", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), callback) {
		t.Fatalf("authorize redirected to %s, want %s", loc, callback)
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
}

func newClient(t *testing.T) (*githubauth.Client, *fakegithub.Server) {
	t.Helper()
	gh := fakegithub.New()
	t.Cleanup(gh.Close)
	c, err := githubauth.New(gh.Config(callback))
	if err != nil {
		t.Fatal(err)
	}
	return c, gh
}

func TestSignIn(t *testing.T) {
	c, gh := newClient(t)
	gh.SignInAs("hubber", 42)
	v := githubauth.NewVerifier()
	code, state := authorize(t, c, "st4te", v)
	if state != "st4te" {
		t.Fatalf("state: got %q, want st4te", state)
	}
	u, err := c.SignIn(t.Context(), code, v)
	if err != nil {
		t.Fatal(err)
	}
	if u != (githubauth.User{ID: 42, Login: "hubber"}) {
		t.Fatalf("SignIn: got %+v, want hubber 42", u)
	}
	// A code works once.
	if _, err := c.SignIn(t.Context(), code, v); err == nil || !strings.Contains(err.Error(), "incorrect or expired") {
		t.Fatalf("SignIn with a used code: got %v, want a refusal", err)
	}
}

func TestSignInWrongVerifier(t *testing.T) {
	c, _ := newClient(t)
	code, _ := authorize(t, c, "s", githubauth.NewVerifier())
	_, err := c.SignIn(t.Context(), code, githubauth.NewVerifier())
	if err == nil || !strings.Contains(err.Error(), "code_verifier") {
		t.Fatalf("SignIn with another verifier: got %v, want a refusal naming code_verifier", err)
	}
}

func TestSignInWrongSecret(t *testing.T) {
	gh := fakegithub.New()
	t.Cleanup(gh.Close)
	cfg := gh.Config(callback)
	cfg.ClientSecret = "wrong"
	c, err := githubauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := githubauth.NewVerifier()
	code, _ := authorize(t, c, "s", v)
	if _, err := c.SignIn(t.Context(), code, v); err == nil || !strings.Contains(err.Error(), "incorrect") {
		t.Fatalf("SignIn with a wrong secret: got %v, want a refusal", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := githubauth.New(githubauth.Config{}); err != githubauth.ErrNotConfigured {
		t.Fatalf("New without credentials: got %v, want ErrNotConfigured", err)
	}
	_, err := githubauth.New(githubauth.Config{ClientID: "a", ClientSecret: "b", URL: "ftp://x", RedirectURL: callback})
	if err == nil {
		t.Fatal("New with an ftp URL: got nil error")
	}
}

// TestRefusedError: a refused exchange is a *RefusedError with GitHub's
// code; its description is kept apart, for logs.
func TestRefusedError(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.SignIn(t.Context(), "no-such-code", githubauth.NewVerifier())
	re, ok := errors.AsType[*githubauth.RefusedError](err)
	if !ok || re.Code != "bad_verification_code" || !strings.Contains(re.Description, "incorrect or expired") {
		t.Fatalf("SignIn with an unknown code: got %#v", err)
	}
}

// TestLoginBounded: a /user reply whose login is not a GitHub login (too
// long, other characters) is refused, never returned.
func TestLoginBounded(t *testing.T) {
	for _, tt := range []struct {
		login string
		ok    bool
	}{
		{"octocat", true},
		{"a-b-c", true},
		{strings.Repeat("x", githubauth.MaxLoginLen), true},
		{strings.Repeat("x", githubauth.MaxLoginLen+1), false},
		{strings.Repeat("x", 20000), false},
		{"-lead", false},
		{"trail-", false},
		{"<b>", false},
		{"", false},
	} {
		if got := githubauth.ValidLogin(tt.login); got != tt.ok {
			t.Errorf("ValidLogin(%.20q) = %v, want %v", tt.login, got, tt.ok)
		}
		if tt.login == "" {
			continue
		}
		c, gh := newClient(t)
		gh.SignInAs(tt.login, 7)
		v := githubauth.NewVerifier()
		code, _ := authorize(t, c, "s", v)
		u, err := c.SignIn(t.Context(), code, v)
		if tt.ok && (err != nil || u.Login != tt.login) {
			t.Errorf("SignIn as %.20q: %v, %v", tt.login, u, err)
		}
		if !tt.ok && !errors.Is(err, githubauth.ErrBadLogin) {
			t.Errorf("SignIn as %.20q (%d bytes): got %v, %v; want ErrBadLogin", tt.login, len(tt.login), u, err)
		}
	}
}
