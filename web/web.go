package web

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Defaults of Config.
const (
	DefaultSessionTTL            = 30 * 24 * time.Hour // how long a sign-in lasts
	DefaultSignInsPerHour        = 60                  // per source address
	DefaultSignInBurst           = 10                  // sign-ins at once from one address
	DefaultMaxSessionsPerAccount = 10
	DefaultMaxTokensPerAccount   = 20
)

// Config configures a Handler.
type Config struct {
	// Store keeps accounts, sessions and tokens. Required.
	Store store.Store
	// Provisioner runs the nodes. Required.
	Provisioner provision.Provisioner
	// GitHub enables "Sign in with GitHub"; nil disables it.
	GitHub *githubauth.Client
	// LocalSignIn enables the development sign-in by user name, without a
	// password. Enable it only where everyone who can reach the server may
	// act as anyone: on loopback, or on a trusted network.
	LocalSignIn bool
	// SecureCookies marks cookies Secure (with the __Host- prefix) even on
	// plain-HTTP requests: set it when a proxy terminates TLS. Requests
	// that arrive over TLS get Secure cookies regardless.
	SecureCookies bool
	// TrustedOrigins are origins ("https://hub.example.com") whose
	// state-changing requests are accepted even when they do not match the
	// request's Host, as behind a proxy that rewrites Host.
	TrustedOrigins []string
	// SessionTTL is how long a sign-in lasts; 0 means DefaultSessionTTL.
	SessionTTL time.Duration
	// PublicURL is the URL people reach the pages at. A request whose Host
	// is not its host (a page on another site whose name was made to
	// resolve here: DNS rebinding) gets 421 Misdirected Request, on every
	// route. "" accepts loopback names only (localhost, 127.0.0.1, [::1]).
	PublicURL string
	// LoopbackHosts also accepts loopback names, on any port, besides
	// PublicURL's host: set it only when the server listens on loopback
	// and PublicURL is a loopback URL.
	LoopbackHosts bool
	// SignInsPerHour limits sign-ins (development and GitHub) from one
	// source address, with bursts of DefaultSignInBurst; 0 means
	// DefaultSignInsPerHour, negative means no limit.
	SignInsPerHour int
	// MaxSessionsPerAccount limits an account's live sessions: signing in
	// once more ends the oldest. 0 means DefaultMaxSessionsPerAccount,
	// negative means no limit.
	MaxSessionsPerAccount int
	// MaxTokensPerAccount limits an account's API tokens; 0 means
	// DefaultMaxTokensPerAccount, negative means no limit.
	MaxTokensPerAccount int
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
}

// Handler is the control plane's http.Handler. It is safe for concurrent
// use.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	mux     *http.ServeMux
	hosts   *hostCheck
	signIns *limiter
	// limitLog rate-limits the log line of a refused sign-in.
	limitLog rate.Sometimes
	handler  http.Handler
	// unavailableLog rate-limits the warning logged for each request
	// refused while the database is unreachable.
	unavailableLog rate.Sometimes
}

// New returns the handler for cfg, with the Host check and cross-origin
// protection applied. It fails only on a malformed public URL or trusted
// origin.
func New(cfg Config) (*Handler, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SignInsPerHour == 0 {
		cfg.SignInsPerHour = DefaultSignInsPerHour
	}
	if cfg.MaxSessionsPerAccount == 0 {
		cfg.MaxSessionsPerAccount = DefaultMaxSessionsPerAccount
	}
	if cfg.MaxTokensPerAccount == 0 {
		cfg.MaxTokensPerAccount = DefaultMaxTokensPerAccount
	}
	hosts, err := newHostCheck(cfg.PublicURL, cfg.LoopbackHosts)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, pages: parsePages(), hosts: hosts,
		signIns:        newLimiter(cfg.SignInsPerHour, DefaultSignInBurst),
		limitLog:       rate.Sometimes{Interval: time.Second},
		unavailableLog: rate.Sometimes{First: 3, Interval: 10 * time.Second}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	h.mux = mux
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", noListing(static)))
	mux.HandleFunc("GET /{$}", h.signInPage)
	mux.HandleFunc("GET /signin", h.signInPage)
	mux.HandleFunc("GET /auth/github", h.githubStart)
	mux.HandleFunc("GET /auth/github/callback", h.githubCallback)
	mux.HandleFunc("POST /auth/local", h.localSignIn)
	mux.HandleFunc("POST /auth/logout", h.signOut)
	mux.HandleFunc("GET /dashboard", h.signedIn(h.dashboard))
	mux.HandleFunc("POST /nodes", h.signedIn(h.createNode))
	mux.HandleFunc("GET /nodes/{id}", h.signedIn(h.nodePage))
	mux.HandleFunc("GET /nodes/{id}/main.go", h.signedIn(h.nodeProgram))
	mux.HandleFunc("POST /nodes/{id}/delete", h.signedIn(h.deleteNode))
	mux.HandleFunc("GET /settings", h.signedIn(h.settings))
	mux.HandleFunc("POST /settings/tokens", h.signedIn(h.createToken))
	mux.HandleFunc("POST /settings/tokens/{id}/delete", h.signedIn(h.deleteToken))
	mux.HandleFunc("GET /api/v1/nodes", h.api(h.apiListNodes))
	mux.HandleFunc("POST /api/v1/nodes", h.api(h.apiCreateNode))
	mux.HandleFunc("GET /api/v1/nodes/{id}", h.api(h.apiGetNode))
	mux.HandleFunc("DELETE /api/v1/nodes/{id}", h.api(h.apiDeleteNode))
	mux.HandleFunc("PATCH /api/v1/nodes/{id}", h.api(h.apiPatchNode))
	mux.HandleFunc("POST /api/v1/nodes/{id}/forwarder-tokens", h.api(h.apiCreateForwarderToken))
	mux.HandleFunc("DELETE /api/v1/nodes/{id}/forwarder-tokens/{name}", h.api(h.apiDeleteForwarderToken))
	mux.HandleFunc("POST /nodes/{id}/allow", h.signedIn(h.setAllow))
	mux.HandleFunc("POST /nodes/{id}/forwarding", h.signedIn(h.setForwarding))
	mux.HandleFunc("POST /nodes/{id}/forwarder-tokens", h.signedIn(h.createForwarderToken))
	mux.HandleFunc("POST /nodes/{id}/forwarder-tokens/{name}/delete", h.signedIn(h.deleteForwarderToken))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if h.methodNotAllowed(w, r) {
			return
		}
		writeJSONError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h.methodNotAllowed(w, r) {
			return
		}
		h.errorPage(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
	})
	cop := http.NewCrossOriginProtection()
	for _, o := range cfg.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("web: trusted origin: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSONError(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		h.errorPage(w, r, http.StatusForbidden, "This request came from another site, so it was refused. Go back to the page and try again.")
	}))
	h.handler = cop.Handler(mux)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	if !h.hosts.ok(r.Host) {
		// Before any route, sign-in included: a rebound name must not reach
		// a page, and the body names no host it could use.
		hdr.Set("Cache-Control", "no-store")
		http.Error(w, "misdirected request: this server does not answer for that host name", http.StatusMisdirectedRequest)
		return
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	h.handler.ServeHTTP(w, r)
}

// ctxKey keys the signed-in account in a request's context.
type ctxKey struct{}

func accountOf(r *http.Request) store.Account {
	a, _ := r.Context().Value(ctxKey{}).(store.Account)
	return a
}

func contextWithAccount(r *http.Request, a store.Account) context.Context {
	return context.WithValue(r.Context(), ctxKey{}, a)
}

// signedIn runs next for a signed-in browser and sends others to the
// sign-in page.
func (h *Handler) signedIn(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := h.lookupSession(w, r)
		if errors.Is(err, store.ErrUnavailable) {
			status, msg := h.userError(r, err)
			h.errorPage(w, r, status, msg)
			return
		}
		if err != nil {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		next(w, r.WithContext(contextWithAccount(r, a)))
	}
}

// newSecret returns a random secret with a prefix naming its kind.
func newSecret(prefix string) string { return prefix + rand.Text() }

// pathID parses the {id} path value; ok is false for anything but a
// positive decimal number.
func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// UnavailableMessage is the error shown (in the JSON API, as "error")
// while the database cannot be reached; the status is 503.
const UnavailableMessage = "The database is unavailable right now, so this request cannot be served; running nodes are not affected. Try again in a moment."

// userError maps an error from the provisioner or store to a status and
// a message for the user.
func (h *Handler) userError(r *http.Request, err error) (int, string) {
	if ne, ok := errors.AsType[*store.NameError](err); ok {
		return http.StatusBadRequest, fmt.Sprintf("Invalid %s %q: use %s.", ne.What, ne.Name, ne.Rule)
	}
	if le, ok := errors.AsType[*provision.LimitError](err); ok {
		return http.StatusConflict, fmt.Sprintf("You have reached the limit of %d %s per user: delete one to create another.", le.Limit, plural(le.Limit, "node", "nodes"))
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		h.unavailableLog.Do(func() {
			h.log.Warn("database unavailable: answering 503", "method", r.Method, "path", r.URL.Path, "err", err)
		})
		return http.StatusServiceUnavailable, UnavailableMessage
	case errors.Is(err, store.ErrNameTaken):
		return http.StatusConflict, "That node name is taken: choose another."
	case errors.Is(err, provision.ErrNoPorts):
		return http.StatusServiceUnavailable, "No port is free for a new node right now: every port of this server's node range is in use. Try again later, or ask the operator to widen --node-ports."
	case errors.Is(err, provision.ErrClosed):
		return http.StatusServiceUnavailable, "The server is shutting down: try again in a moment."
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "No such node."
	case errors.Is(err, provision.ErrTooManyForwarderTokens):
		return http.StatusConflict, fmt.Sprintf("This node has %d forwarder tokens, the most allowed: delete one to add another.", provision.MaxForwarderTokens)
	case errors.Is(err, provision.ErrBadToken):
		return http.StatusBadRequest, "A forwarder token has 16 to 256 characters."
	}
	if re, ok := errors.AsType[*provision.RateError](err); ok {
		return http.StatusTooManyRequests, fmt.Sprintf("You have created %d nodes in the last hour, the most allowed: try again in %s.", re.Limit, waitWords(re.RetryAfter))
	}
	if ae, ok := errors.AsType[*provision.AllowError](err); ok {
		return http.StatusBadRequest, "Invalid allow-list: " + ae.Reason + "."
	}
	h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "Something went wrong on our side; it has been logged."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
