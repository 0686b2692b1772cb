// Package web is the control plane's user interface and JSON API: an
// http.Handler with sign-in (GitHub OAuth with PKCE, or a development
// sign-in by user name), sessions, pages to create, watch and delete hub
// nodes, personal API tokens, and /api/v1.
//
// Pages are html/template files embedded with the CSS and a few lines of
// JavaScript (copy buttons; every page works without it). Every
// state-changing request passes http.CrossOriginProtection: browsers'
// cross-origin POSTs are refused with 403, while requests without
// Sec-Fetch-Site or Origin (curl, programs) pass, which is what lets
// people sign in and use the API from the command line.
//
// Sessions and tokens are random texts (crypto/rand.Text) of which only
// the SHA-256 is stored. The session cookie is HttpOnly and SameSite=Lax;
// over TLS (or with Config.SecureCookies, behind a TLS proxy) it is also
// Secure and named with the __Host- prefix. An unknown or forged cookie is
// treated as no cookie.
//
// Before any route, a request whose Host is not the public URL's host (or
// a loopback name, when allowed) gets 421 Misdirected Request: this is
// what stops DNS rebinding. Sign-ins are rate-limited per source address,
// live sessions per account are bounded (the oldest end), and so are API
// tokens per account; over a limit the API answers 429 with Retry-After
// and pages say so. JSON bodies must use exact keys, each once. Wrong
// methods get 405 with Allow. The threat model: docs/security.md.
//
// Routes:
//
//	GET  /                          the dashboard when signed in, else the sign-in page
//	GET  /signin                    sign-in page
//	GET  /auth/github               to GitHub, with state and a PKCE challenge
//	GET  /auth/github/callback      back from GitHub: check state, exchange, sign in
//	POST /auth/local                development sign-in: form field username
//	POST /auth/logout               sign out
//	GET  /dashboard                 the account's nodes, refreshed every 5 s
//	POST /nodes                     create a node (form field name)
//	GET  /nodes/{id}                a node: address, route, ready-to-run programs
//	GET  /nodes/{id}/main.go        the Go program alone
//	POST /nodes/{id}/delete         delete a node
//	POST /nodes/{id}/allow          set the allow-list (form field allow: networks)
//	POST /nodes/{id}/forwarding     named forwarding on or off (named_forwarding=on)
//	POST /nodes/{id}/forwarder-tokens              make a token for name (shown once)
//	POST /nodes/{id}/forwarder-tokens/{name}/delete
//	GET  /settings                  personal API tokens
//	POST /settings/tokens           create one (shown once)
//	POST /settings/tokens/{id}/delete
//	GET  /api/v1/nodes              {"nodes": [...]}
//	POST /api/v1/nodes              {"name": "..."} → 201 and the node
//	GET  /api/v1/nodes/{id}         the node
//	DELETE /api/v1/nodes/{id}       204
//	PATCH /api/v1/nodes/{id}        {"allow": [...], "named_forwarding": bool} → the node
//	POST /api/v1/nodes/{id}/forwarder-tokens  {"name": "..."} → 201 {"name", "token", "node"}
//	DELETE /api/v1/nodes/{id}/forwarder-tokens/{name}  204
//
// API errors are {"error": "message"} with 400 (bad name or body), 401 (no
// or bad credentials), 404 (unknown, or another account's), 405 (wrong
// method), 409 (limit reached, name taken), 429 (rate limit, with
// Retry-After) or 503 (no free port, shutting down, or the database
// unavailable: web.UnavailableMessage; the pages answer 503 then too, and
// no one is signed out).
package web
