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
//	GET  /settings                  personal API tokens
//	POST /settings/tokens           create one (shown once)
//	POST /settings/tokens/{id}/delete
//	GET  /api/v1/nodes              {"nodes": [...]}
//	POST /api/v1/nodes              {"name": "..."} → 201 and the node
//	GET  /api/v1/nodes/{id}         the node
//	DELETE /api/v1/nodes/{id}       204
//
// API errors are {"error": "message"} with 400 (bad name or body), 401 (no
// or bad credentials), 404 (unknown, or another account's), 409 (limit
// reached, name taken) or 503 (no free port, shutting down, or the
// database unavailable: web.UnavailableMessage, then the pages answer 503
// too and no one is signed out).
package web
