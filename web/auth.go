package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/store"
)

// Cookie names; with Secure cookies they get the __Host- prefix, which
// browsers accept only from a secure origin, for Path=/ and without Domain,
// so a sibling subdomain cannot plant them.
const (
	sessionCookie = "ockamhub_session"
	oauthCookie   = "ockamhub_oauth" // state "." verifier, during a GitHub sign-in
	oauthTTL      = 10 * time.Minute
)

func (h *Handler) secure(r *http.Request) bool { return h.cfg.SecureCookies || r.TLS != nil }

func (h *Handler) cookieName(r *http.Request, base string) string {
	if h.secure(r) {
		return "__Host-" + base
	}
	return base
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, base, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     h.cookieName(r, base),
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   h.secure(r),
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		c.Expires = time.Now().Add(maxAge)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// sessionAccount returns the account of the request's session cookie.
// A cookie that names no live session is cleared.
func (h *Handler) sessionAccount(w http.ResponseWriter, r *http.Request) (store.Account, bool) {
	a, err := h.lookupSession(w, r)
	return a, err == nil
}

// lookupSession returns the account of the request's session cookie, or
// store.ErrNotFound (clearing a cookie that names no live session), or an
// error wrapping store.ErrUnavailable when the database cannot be reached:
// the cookie is kept then, so that an outage signs no one out.
func (h *Handler) lookupSession(w http.ResponseWriter, r *http.Request) (store.Account, error) {
	c, err := r.Cookie(h.cookieName(r, sessionCookie))
	if err != nil || c.Value == "" {
		return store.Account{}, store.ErrNotFound
	}
	a, err := h.cfg.Store.SessionAccount(r.Context(), store.HashSecret(c.Value), time.Now())
	if errors.Is(err, store.ErrUnavailable) {
		return store.Account{}, err
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			h.log.Error("looking up a session", "err", err)
		}
		h.setCookie(w, r, sessionCookie, "", 0)
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

// startSession signs the browser in as a.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, a store.Account) error {
	now := time.Now()
	token := newSecret("")
	if err := h.cfg.Store.CreateSession(r.Context(), store.Session{
		Hash: store.HashSecret(token), AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(h.cfg.SessionTTL),
	}); err != nil {
		return err
	}
	if err := h.cfg.Store.DeleteExpiredSessions(r.Context(), now); err != nil {
		h.log.Warn("deleting expired sessions", "err", err)
	}
	if lim := h.cfg.MaxSessionsPerAccount; lim > 0 {
		// The oldest sign-ins end, so that one account cannot pile up
		// live sessions.
		if n, err := h.cfg.Store.TrimSessions(r.Context(), a.ID, lim, now); err != nil {
			h.log.Warn("ending old sessions", "account", a.ID, "err", err)
		} else if n > 0 {
			h.log.Info("ended old sessions over the limit", "account", a.ID, "ended", n, "limit", lim)
		}
	}
	h.setCookie(w, r, sessionCookie, token, h.cfg.SessionTTL)
	h.log.Info("signed in", "account", a.ID, "login", a.Login, "provider", a.Provider)
	return nil
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessionAccount(w, r); ok {
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "signin", &pageData{Title: "Sign in"})
}

func (h *Handler) signInError(w http.ResponseWriter, r *http.Request, status int, msg string, d *pageData) {
	if d == nil {
		d = &pageData{}
	}
	d.Title, d.Error = "Sign in", msg
	h.render(w, r, status, "signin", d)
}

// signInAllowed takes a sign-in from the request's source address, or
// answers 429 with Retry-After and a plain page and returns false.
func (h *Handler) signInAllowed(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := h.signIns.allow(sourceIP(r), time.Now())
	if ok {
		return true
	}
	h.log.Warn("sign-in rate limit", "source", sourceIP(r))
	w.Header().Set("Retry-After", retryAfter(wait))
	h.signInError(w, r, http.StatusTooManyRequests, "Too many sign-ins from your address: please wait "+waitWords(wait)+" and try again.", nil)
	return false
}

// oauthErrorCode returns code if it looks like an OAuth error code
// (RFC 6749 §4.1.2.1: letters and underscores), "unknown" otherwise: even
// the code is the caller's text.
func oauthErrorCode(code string) string {
	if len(code) == 0 || len(code) > 64 {
		return "unknown"
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; !('a' <= c && c <= 'z' || c == '_') {
			return "unknown"
		}
	}
	return code
}

func (h *Handler) localSignIn(w http.ResponseWriter, r *http.Request) {
	if !h.cfg.LocalSignIn {
		h.errorPage(w, r, http.StatusNotFound, "The development sign-in is not enabled on this server.")
		return
	}
	if !h.signInAllowed(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := strings.TrimSpace(r.PostFormValue("username"))
	if err := store.CheckUsername(name); err != nil {
		ne, _ := errors.AsType[*store.NameError](err)
		h.signInError(w, r, http.StatusBadRequest, "Invalid user name: use "+ne.Rule+".", &pageData{Username: name})
		return
	}
	// Local user names are case-insensitive, as GitHub's are.
	a, err := h.cfg.Store.UpsertAccount(r.Context(), store.ProviderLocal, strings.ToLower(name), name)
	if err == nil {
		err = h.startSession(w, r, a)
	}
	if err != nil {
		status, msg := h.userError(r, err) // 503 while the database is unavailable
		h.signInError(w, r, status, msg, nil)
		return
	}
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(h.cookieName(r, sessionCookie)); err == nil && c.Value != "" {
		if err := h.cfg.Store.DeleteSession(r.Context(), store.HashSecret(c.Value)); err != nil {
			h.log.Error("deleting a session", "err", err)
		}
	}
	h.setCookie(w, r, sessionCookie, "", 0)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (h *Handler) githubStart(w http.ResponseWriter, r *http.Request) {
	if h.cfg.GitHub == nil {
		h.errorPage(w, r, http.StatusNotFound, "Sign-in with GitHub is not configured on this server.")
		return
	}
	state, verifier := newSecret(""), githubauth.NewVerifier()
	h.setCookie(w, r, oauthCookie, state+"."+verifier, oauthTTL)
	http.Redirect(w, r, h.cfg.GitHub.AuthCodeURL(state, verifier), http.StatusFound)
}

func (h *Handler) githubCallback(w http.ResponseWriter, r *http.Request) {
	if h.cfg.GitHub == nil {
		h.errorPage(w, r, http.StatusNotFound, "Sign-in with GitHub is not configured on this server.")
		return
	}
	q := r.URL.Query()
	var state, verifier string
	if c, err := r.Cookie(h.cookieName(r, oauthCookie)); err == nil {
		state, verifier, _ = strings.Cut(c.Value, ".")
	}
	// The state cookie is single use, whatever happens next.
	h.setCookie(w, r, oauthCookie, "", 0)
	if e := q.Get("error"); e != "" {
		// A fixed message and the error code, never error_description:
		// anyone can send a browser here with any text in it ("Visit
		// http://evil.example to re-verify").
		h.signInError(w, r, http.StatusBadRequest, "GitHub did not sign you in (error code: "+oauthErrorCode(e)+"). Please sign in again.", nil)
		return
	}
	if !h.signInAllowed(w, r) {
		return
	}
	got := q.Get("state")
	if state == "" || verifier == "" || subtle.ConstantTimeCompare([]byte(got), []byte(state)) != 1 {
		h.signInError(w, r, http.StatusBadRequest, "Sign-in failed: the reply from GitHub does not match a sign-in started in this browser (wrong or expired state). Please sign in again.", nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		h.signInError(w, r, http.StatusBadRequest, "Sign-in failed: GitHub sent no authorization code. Please sign in again.", nil)
		return
	}
	u, err := h.cfg.GitHub.SignIn(r.Context(), code, verifier)
	if err != nil {
		h.log.Warn("GitHub sign-in failed", "err", err)
		msg := "Sign-in with GitHub failed. Please sign in again."
		if re, ok := errors.AsType[*githubauth.RefusedError](err); ok {
			msg = "GitHub refused the sign-in (error code: " + oauthErrorCode(re.Code) + "). Please sign in again."
		} else if errors.Is(err, githubauth.ErrBadLogin) {
			msg = "Sign-in with GitHub failed: GitHub sent a user name that is not valid."
		}
		h.signInError(w, r, http.StatusBadGateway, msg, nil)
		return
	}
	a, err := h.cfg.Store.UpsertAccount(r.Context(), store.ProviderGitHub, itoa(u.ID), u.Login)
	if err == nil {
		err = h.startSession(w, r, a)
	}
	if err != nil {
		status, msg := h.userError(r, err) // 503 while the database is unavailable
		h.signInError(w, r, status, msg, nil)
		return
	}
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}
