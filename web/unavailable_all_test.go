package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/web"
)

// writesDownStore keeps answering who is signed in (SessionAccount,
// TokenAccount) while every other call fails with store.ErrUnavailable:
// what a database that went away after the request was authenticated, or
// a statement timeout on one query, looks like to the handler after the
// sign-in check.
type writesDownStore struct {
	store.Store
	down atomic.Bool
}

func (d *writesDownStore) err() error {
	if d.down.Load() {
		return fmt.Errorf("test: connection reset: %w", store.ErrUnavailable)
	}
	return nil
}

func (d *writesDownStore) UpsertAccount(ctx context.Context, p, id, login string) (store.Account, error) {
	if err := d.err(); err != nil {
		return store.Account{}, err
	}
	return d.Store.UpsertAccount(ctx, p, id, login)
}
func (d *writesDownStore) Account(ctx context.Context, id int64) (store.Account, error) {
	if err := d.err(); err != nil {
		return store.Account{}, err
	}
	return d.Store.Account(ctx, id)
}
func (d *writesDownStore) CreateSession(ctx context.Context, s store.Session) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.CreateSession(ctx, s)
}
func (d *writesDownStore) DeleteSession(ctx context.Context, h store.Hash) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.DeleteSession(ctx, h)
}
func (d *writesDownStore) CreateToken(ctx context.Context, tk store.Token, limit int) (store.Token, error) {
	if err := d.err(); err != nil {
		return store.Token{}, err
	}
	return d.Store.CreateToken(ctx, tk, limit)
}
func (d *writesDownStore) Tokens(ctx context.Context, accountID int64) ([]store.Token, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Store.Tokens(ctx, accountID)
}
func (d *writesDownStore) DeleteToken(ctx context.Context, accountID, id int64) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.DeleteToken(ctx, accountID, id)
}
func (d *writesDownStore) CreateNode(ctx context.Context, n store.Node, limit int) (store.Node, error) {
	if err := d.err(); err != nil {
		return store.Node{}, err
	}
	return d.Store.CreateNode(ctx, n, limit)
}
func (d *writesDownStore) Node(ctx context.Context, accountID, id int64) (store.Node, error) {
	if err := d.err(); err != nil {
		return store.Node{}, err
	}
	return d.Store.Node(ctx, accountID, id)
}
func (d *writesDownStore) Nodes(ctx context.Context, accountID int64) ([]store.Node, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Store.Nodes(ctx, accountID)
}
func (d *writesDownStore) DeleteNode(ctx context.Context, accountID, id int64) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.DeleteNode(ctx, accountID, id)
}
func (d *writesDownStore) SetNodeAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.SetNodeAllow(ctx, accountID, id, allow)
}
func (d *writesDownStore) SetNodeNamedForwarding(ctx context.Context, accountID, id int64, on bool) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.SetNodeNamedForwarding(ctx, accountID, id, on)
}
func (d *writesDownStore) SetNodeForwarderToken(ctx context.Context, accountID, id int64, name string, h store.Hash) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.SetNodeForwarderToken(ctx, accountID, id, name, h)
}
func (d *writesDownStore) DeleteNodeForwarderToken(ctx context.Context, accountID, id int64, name string) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.DeleteNodeForwarderToken(ctx, accountID, id, name)
}

// TestDatabaseUnavailableEveryHandler: with the caller authenticated but
// every other store call failing with store.ErrUnavailable, each handler
// that touches the store answers 503 (JSON for the API) rather than 500,
// 404 or a redirect, and the running node keeps echoing.
func TestDatabaseUnavailableEveryHandler(t *testing.T) {
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "ockamhub.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds := &writesDownStore{Store: st}
	prov, err := provision.New(provision.Config{Store: ds, ListenHost: "127.0.0.1", Ports: portRange(10), MaxNodesPerAccount: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Shutdown(context.Background()) })
	h, err := web.New(web.Config{Store: ds, Provisioner: prov, LocalSignIn: true, MaxTokensPerAccount: 5})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	s := &server{Server: ts, st: st, prov: prov}
	c := s.client(t)
	s.signIn(t, c, "alice")
	r := s.apiCreate(t, c, "demo")
	wantStatus(t, "create", r, http.StatusCreated)
	n := decode[apiNode](t, r)
	echo(t, n.Address)
	nodePath := fmt.Sprintf("/api/v1/nodes/%d", n.ID)
	page := fmt.Sprintf("/nodes/%d", n.ID)
	json := []string{"Content-Type", "application/json"}

	ds.down.Store(true)
	api := []struct {
		what string
		r    func() response
	}{
		{"GET " + nodePath, func() response { return do(t, c, "GET", s.URL+nodePath, nil) }},
		{"PATCH " + nodePath + " allow", func() response {
			return do(t, c, "PATCH", s.URL+nodePath, strings.NewReader(`{"allow":["10.0.0.0/8"]}`), json...)
		}},
		{"PATCH " + nodePath + " named_forwarding", func() response {
			return do(t, c, "PATCH", s.URL+nodePath, strings.NewReader(`{"named_forwarding":true}`), json...)
		}},
		{"POST forwarder token", func() response {
			return do(t, c, "POST", s.URL+nodePath+"/forwarder-tokens", strings.NewReader(`{"name":"svc"}`), json...)
		}},
		{"DELETE forwarder token", func() response { return do(t, c, "DELETE", s.URL+nodePath+"/forwarder-tokens/svc", nil) }},
		{"DELETE " + nodePath, func() response { return do(t, c, "DELETE", s.URL+nodePath, nil) }},
	}
	for _, tt := range api {
		r := tt.r()
		wantAPIError(t, tt.what, r, http.StatusServiceUnavailable, "database is unavailable")
	}
	pages := []struct {
		what string
		r    func() response
	}{
		{"GET /settings", func() response { return do(t, c, "GET", s.URL+"/settings", nil) }},
		{"POST /settings/tokens", func() response {
			return s.postForm(t, c, "/settings/tokens", url.Values{"name": {"ci"}})
		}},
		{"POST /settings/tokens (name too long)", func() response {
			return s.postForm(t, c, "/settings/tokens", url.Values{"name": {strings.Repeat("x", 65)}})
		}},
		{"POST /settings/tokens/1/delete", func() response { return s.postForm(t, c, "/settings/tokens/1/delete", nil) }},
		{"GET " + page, func() response { return do(t, c, "GET", s.URL+page, nil) }},
		{"POST " + page + "/allow", func() response {
			return s.postForm(t, c, page+"/allow", url.Values{"allow": {"10.0.0.0/8"}})
		}},
		{"POST " + page + "/forwarding", func() response {
			return s.postForm(t, c, page+"/forwarding", url.Values{"named_forwarding": {"on"}})
		}},
		{"POST " + page + "/delete", func() response { return s.postForm(t, c, page+"/delete", nil) }},
		{"POST /nodes", func() response { return s.postForm(t, c, "/nodes", url.Values{"name": {"other"}}) }},
		{"POST /auth/local", func() response {
			return s.postForm(t, s.client(t), "/auth/local", url.Values{"username": {"bob"}})
		}},
	}
	for _, tt := range pages {
		r := tt.r()
		if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(unescape(r.body), "database is unavailable") {
			t.Errorf("%s while the database is unavailable: %s, want 503 saying the database is unavailable\n%.300s", tt.what, r.Status, r.body)
		}
	}
	echo(t, n.Address)

	ds.down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do(t, c, "GET", s.URL+nodePath, nil)
		if r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after recovery: %s", nodePath, r.Status)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	echo(t, n.Address)
}
