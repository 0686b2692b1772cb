package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/internal/pgtest"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/pgstore"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/web"
)

// benchStores opens a new store of each kind; PostgreSQL only when
// OCKAMHUB_TEST_POSTGRES is set (the sub-benchmark skips otherwise).
var benchStores = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"sqlite", func(b *testing.B) store.Store {
		s, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "ockamhub.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"postgres", func(b *testing.B) store.Store {
		s, err := pgstore.Open(context.Background(), pgtest.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
}

// BenchmarkStoreAPI measures the JSON API's create (with the delete that
// frees the slot again), list and get calls, and a signed-in page's
// session lookup, on each store, over real HTTP on 127.0.0.1. Compare the
// store=sqlite and store=postgres lines (docs/benchmarks.md).
func BenchmarkStoreAPI(b *testing.B) {
	for _, bs := range benchStores {
		b.Run("store="+bs.name, func(b *testing.B) {
			st := bs.open(b)
			prov, err := provision.New(provision.Config{
				Store: st, ListenHost: "127.0.0.1", Ports: portRange(50), MaxNodesPerAccount: 10, MaxCreatesPerHour: -1,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { prov.Shutdown(context.Background()) })
			h, err := web.New(web.Config{Store: st, Provisioner: prov, LocalSignIn: true})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(h)
			b.Cleanup(ts.Close)
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := c.PostForm(ts.URL+"/auth/local", map[string][]string{"username": {"bench"}})
			if err != nil || resp.StatusCode != http.StatusSeeOther {
				b.Fatalf("sign in: %v %v", resp, err)
			}
			resp.Body.Close()
			req := func(method, path, body string, want int) []byte {
				r, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
				if body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				resp, err := c.Do(r)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				out, err := io.ReadAll(resp.Body)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != want {
					b.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, out)
				}
				return out
			}
			for i := range 3 {
				req("POST", "/api/v1/nodes", fmt.Sprintf(`{"name":"keep%d"}`, i), http.StatusCreated)
			}
			b.Run("call=create+delete", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var n struct{ ID int64 }
					json.Unmarshal(req("POST", "/api/v1/nodes", `{"name":"bench"}`, http.StatusCreated), &n)
					req("DELETE", fmt.Sprintf("/api/v1/nodes/%d", n.ID), "", http.StatusNoContent)
				}
			})
			b.Run("call=list", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req("GET", "/api/v1/nodes", "", http.StatusOK)
				}
			})
			b.Run("call=settings-page", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req("GET", "/settings", "", http.StatusOK)
				}
			})
		})
	}
}

// BenchmarkStoreSessionAccount measures the session lookup that every
// signed-in request makes, on each store, without HTTP.
func BenchmarkStoreSessionAccount(b *testing.B) {
	for _, bs := range benchStores {
		b.Run("store="+bs.name, func(b *testing.B) {
			st := bs.open(b)
			ctx := context.Background()
			a, err := st.UpsertAccount(ctx, store.ProviderLocal, "bench", "bench")
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for i := range 100 {
				if err := st.CreateSession(ctx, store.Session{Hash: store.HashSecret(fmt.Sprint(i)), AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			h := store.HashSecret("42")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.SessionAccount(ctx, h, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
