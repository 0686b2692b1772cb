// Package githubauth signs people in with GitHub: the OAuth 2.0
// authorization code flow with a state parameter and PKCE (S256), then
// GET /user for the login and numeric id. The endpoints are configurable,
// for GitHub Enterprise Server and for tests (package fakegithub).
//
// Protocol flow:
//
//	browser → AuthCodeURL(state, verifier)   {URL}/login/oauth/authorize?client_id&redirect_uri&state&code_challenge&code_challenge_method=S256
//	GitHub  → RedirectURL?code&state         the caller checks state against what it kept
//	SignIn  → POST {URL}/login/oauth/access_token (code, code_verifier, client secret)
//	        → GET {APIURL}/user with "Authorization: Bearer TOKEN" → {"login", "id"}
//
// The access token is used once and dropped: the control plane needs only
// who signed in.
package githubauth

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Default endpoints (github.com).
const (
	DefaultURL    = "https://github.com"
	DefaultAPIURL = "https://api.github.com"
)

// Errors of SignIn, besides *RefusedError.
var (
	// ErrNotConfigured is returned by New without a client id or secret.
	ErrNotConfigured = errors.New("githubauth: client id and secret are required")
	// ErrBadLogin is returned by SignIn when GitHub's reply names a login
	// that is not a GitHub login (1 to MaxLoginLen letters, digits and
	// hyphens): it is never stored.
	ErrBadLogin = errors.New("githubauth: the reply's login is not a valid GitHub login")
)

// MaxLoginLen is the longest GitHub login.
const MaxLoginLen = 39

// RefusedError is GitHub refusing the token exchange. Code is its OAuth
// error code ("bad_verification_code"); Description is its free text,
// for logs only: it is the provider's words, and showing them to users
// would let anyone who can craft a callback URL put text on our pages.
type RefusedError struct {
	Code        string
	Description string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("githubauth: token exchange refused: %s (%s)", e.Code, e.Description)
}

// ValidLogin reports whether login is a GitHub login: 1 to 39 letters,
// digits and single hyphens, not starting or ending with a hyphen.
func ValidLogin(login string) bool {
	if len(login) == 0 || len(login) > MaxLoginLen || login[0] == '-' || login[len(login)-1] == '-' {
		return false
	}
	for i := 0; i < len(login); i++ {
		c := login[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Config configures a Client.
type Config struct {
	// ClientID and ClientSecret identify the OAuth app.
	ClientID, ClientSecret string
	// URL is GitHub's web address: DefaultURL, or a GitHub Enterprise
	// Server's (https://ghe.example).
	URL string
	// APIURL is the REST API's address: DefaultAPIURL, or
	// https://ghe.example/api/v3.
	APIURL string
	// RedirectURL is the callback URL registered for the OAuth app.
	RedirectURL string
	// HTTPClient makes the token and API requests; nil means a client with
	// a 10 s timeout.
	HTTPClient *http.Client
}

// Client runs the sign-in flow. It is safe for concurrent use.
type Client struct {
	oauth  oauth2.Config
	apiURL string
	hc     *http.Client
}

// User is the person who signed in.
type User struct {
	ID    int64  `json:"id"`    // stable across renames
	Login string `json:"login"` // the current user name
}

// New returns a Client for cfg; empty URLs mean github.com.
func New(cfg Config) (*Client, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, ErrNotConfigured
	}
	base := strings.TrimSuffix(cmp.Or(cfg.URL, DefaultURL), "/")
	api := strings.TrimSuffix(cmp.Or(cfg.APIURL, DefaultAPIURL), "/")
	for _, u := range []string{base, api, cfg.RedirectURL} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, fmt.Errorf("githubauth: %q is not an http(s) URL", u)
		}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{
				AuthURL:  base + "/login/oauth/authorize",
				TokenURL: base + "/login/oauth/access_token",
				// GitHub takes the client credentials in the form; saying
				// so saves the library a probing request.
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		apiURL: api,
		hc:     hc,
	}, nil
}

// NewVerifier returns a new random PKCE code verifier. Keep it with the
// state until the callback, and never send it to the browser's URL.
func NewVerifier() string { return oauth2.GenerateVerifier() }

// AuthCodeURL returns the GitHub page to send the browser to. state is a
// random value the callback must match; verifier is from NewVerifier.
func (c *Client) AuthCodeURL(state, verifier string) string {
	return c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// SignIn exchanges the callback's code (with the verifier that made the
// challenge) for a token and returns the user it belongs to.
func (c *Client) SignIn(ctx context.Context, code, verifier string) (User, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	tok, err := c.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode != "" {
			return User{}, &RefusedError{Code: re.ErrorCode, Description: re.ErrorDescription}
		}
		return User{}, fmt.Errorf("githubauth: token exchange: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.apiURL+"/user", nil)
	if err != nil {
		return User{}, fmt.Errorf("githubauth: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := c.hc.Do(req)
	if err != nil {
		return User{}, fmt.Errorf("githubauth: GET /user: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return User{}, fmt.Errorf("githubauth: GET /user: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return User{}, fmt.Errorf("githubauth: GET /user: %s", resp.Status)
	}
	var u User
	if err := json.Unmarshal(body, &u); err != nil {
		return User{}, fmt.Errorf("githubauth: GET /user: %w", err)
	}
	if u.ID == 0 || u.Login == "" {
		return User{}, errors.New("githubauth: GET /user: no id or login in the reply")
	}
	if !ValidLogin(u.Login) {
		return User{}, fmt.Errorf("%w (%d bytes)", ErrBadLogin, len(u.Login))
	}
	return u, nil
}
