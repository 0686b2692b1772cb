package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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

// downStore is a store whose database can be made unreachable: while down,
// every method used by the handler and the provisioner fails with an error
// wrapping store.ErrUnavailable, as pgstore's do when PostgreSQL is gone.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (d *downStore) err() error {
	if d.down.Load() {
		return fmt.Errorf("test: connection refused: %w", store.ErrUnavailable)
	}
	return nil
}

func (d *downStore) SessionAccount(ctx context.Context, h store.Hash, now time.Time) (store.Account, error) {
	if err := d.err(); err != nil {
		return store.Account{}, err
	}
	return d.Store.SessionAccount(ctx, h, now)
}

func (d *downStore) UpsertAccount(ctx context.Context, provider, providerID, login string) (store.Account, error) {
	if err := d.err(); err != nil {
		return store.Account{}, err
	}
	return d.Store.UpsertAccount(ctx, provider, providerID, login)
}

func (d *downStore) TokenAccount(ctx context.Context, h store.Hash) (store.Account, error) {
	if err := d.err(); err != nil {
		return store.Account{}, err
	}
	return d.Store.TokenAccount(ctx, h)
}

func (d *downStore) Nodes(ctx context.Context, accountID int64) ([]store.Node, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Store.Nodes(ctx, accountID)
}

func (d *downStore) AllNodes(ctx context.Context) ([]store.Node, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Store.AllNodes(ctx)
}

func (d *downStore) CreateNode(ctx context.Context, n store.Node, limit int) (store.Node, error) {
	if err := d.err(); err != nil {
		return store.Node{}, err
	}
	return d.Store.CreateNode(ctx, n, limit)
}

// TestDatabaseUnavailable checks that while the database cannot be
// reached the API answers 503 with a JSON error (not 401: nobody is signed
// out), pages answer 503, the session cookie is kept, a running node keeps
// echoing, and everything works again when the database is back.
func TestDatabaseUnavailable(t *testing.T) {
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "ockamhub.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds := &downStore{Store: st}
	prov, err := provision.New(provision.Config{Store: ds, ListenHost: "127.0.0.1", Ports: portRange(10), MaxNodesPerAccount: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Shutdown(context.Background()) })
	h, err := web.New(web.Config{Store: ds, Provisioner: prov, LocalSignIn: true})
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

	ds.down.Store(true)
	for _, tt := range []struct {
		what string
		r    func() response
	}{
		{"GET /api/v1/nodes (cookie)", func() response { return do(t, c, "GET", s.URL+"/api/v1/nodes", nil) }},
		{"GET /api/v1/nodes (token)", func() response {
			return do(t, http.DefaultClient, "GET", s.URL+"/api/v1/nodes", nil, "Authorization", "Bearer ohub_whatever")
		}},
		{"POST /api/v1/nodes", func() response { return s.apiCreate(t, c, "second") }},
	} {
		r := tt.r()
		wantAPIError(t, tt.what, r, http.StatusServiceUnavailable, "database is unavailable")
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", tt.what, ct)
		}
	}
	r = do(t, c, "GET", s.URL+"/dashboard", nil)
	wantStatus(t, "GET /dashboard", r, http.StatusServiceUnavailable)
	for _, ck := range r.Cookies() {
		if ck.MaxAge < 0 {
			t.Errorf("GET /dashboard while the database is down cleared cookie %s", ck.Name)
		}
	}
	r = s.postForm(t, s.client(t), "/auth/local", url.Values{"username": {"bob"}})
	wantStatus(t, "POST /auth/local", r, http.StatusServiceUnavailable)
	if !strings.Contains(unescape(r.body), "database is unavailable") {
		t.Errorf("sign-in page while the database is down does not say why:\n%s", r.body)
	}
	echo(t, n.Address) // the running node does not need the database

	ds.down.Store(false)
	r = do(t, c, "GET", s.URL+"/api/v1/nodes", nil)
	wantStatus(t, "GET /api/v1/nodes after recovery", r, http.StatusOK)
	wantStatus(t, "create after recovery", s.apiCreate(t, c, "second"), http.StatusCreated)
}
