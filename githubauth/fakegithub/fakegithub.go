// Package fakegithub is a fake GitHub for tests of the sign-in flow: an
// httptest server with the three endpoints package githubauth uses.
//
//	GET  /login/oauth/authorize     checks client_id, redirect_uri and an S256 code_challenge,
//	                                then redirects back at once with a code and the state
//	POST /login/oauth/access_token  checks the client secret, the code (single use),
//	                                the redirect_uri and that code_verifier hashes to the challenge
//	GET  /user                      {"login", "id"} for "Authorization: Bearer TOKEN"
//
// The token endpoint answers like GitHub: form-encoded unless the request
// accepts JSON, and failures as an "error" field with status 200.
//
// It is test support: import it only from _test.go files.
package fakegithub

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/ockamhub/ockamhub/githubauth"
)

// Credentials of the fake OAuth app.
const (
	ClientID     = "fake-client-id"
	ClientSecret = "fake-client-secret"
)

// Server is a running fake GitHub. It is safe for concurrent use.
type Server struct {
	// URL is the server's base URL, for both githubauth.Config.URL and
	// APIURL.
	URL string

	srv *httptest.Server

	mu     sync.Mutex
	next   githubauth.User
	grants map[string]grant           // by code
	tokens map[string]githubauth.User // by access token
}

type grant struct {
	challenge, redirectURI string
	user                   githubauth.User
}

// New starts a fake GitHub on 127.0.0.1 that approves every sign-in as
// octocat (id 583231) until SignInAs says otherwise. Close it when done.
func New() *Server {
	s := &Server{
		next:   githubauth.User{ID: 583231, Login: "octocat"},
		grants: make(map[string]grant),
		tokens: make(map[string]githubauth.User),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	mux.HandleFunc("GET /user", s.user)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// SignInAs makes later authorizations approve the given user.
func (s *Server) SignInAs(login string, id int64) {
	s.mu.Lock()
	s.next = githubauth.User{ID: id, Login: login}
	s.mu.Unlock()
}

// Config returns a githubauth.Config for this server and the fake app.
func (s *Server) Config(redirectURL string) githubauth.Config {
	return githubauth.Config{
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		URL:          s.URL,
		APIURL:       s.URL,
		RedirectURL:  redirectURL,
	}
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("client_id") != ClientID:
		http.Error(w, "fakegithub: unknown client_id", http.StatusNotFound)
		return
	case q.Get("response_type") != "code":
		http.Error(w, "fakegithub: response_type must be code", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "fakegithub: an S256 code_challenge is required", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || back.Host == "" {
		http.Error(w, "fakegithub: redirect_uri is required", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	s.mu.Lock()
	s.grants[code] = grant{challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri"), user: s.next}
	s.mu.Unlock()
	bq := back.Query()
	bq.Set("code", code)
	if st := q.Get("state"); st != "" {
		bq.Set("state", st)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	reply := func(vals url.Values) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			m := make(map[string]string, len(vals))
			for k := range vals {
				m[k] = vals.Get(k)
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(m)
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.Write([]byte(vals.Encode()))
	}
	fail := func(code, desc string) {
		reply(url.Values{"error": {code}, "error_description": {desc}})
	}
	if id != ClientID || secret != ClientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	code := r.PostForm.Get("code")
	s.mu.Lock()
	g, ok := s.grants[code]
	delete(s.grants, code)
	s.mu.Unlock()
	if !ok {
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	}
	if ru := r.PostForm.Get("redirect_uri"); ru != "" && ru != g.redirectURI {
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail("bad_verification_code", "The code_verifier does not match the code_challenge.")
		return
	}
	tok := "gho_" + rand.Text()
	s.mu.Lock()
	s.tokens[tok] = g.user
	s.mu.Unlock()
	reply(url.Values{"access_token": {tok}, "token_type": {"bearer"}, "scope": {""}})
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, _ = strings.CutPrefix(auth, "token ")
	}
	s.mu.Lock()
	u, ok := s.tokens[tok]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"Bad credentials"}`))
		return
	}
	json.NewEncoder(w).Encode(u)
}
