package web

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeExact: the API's JSON body decoder never panics, and whatever
// it accepts uses only the exact keys asked for.
func FuzzDecodeExact(f *testing.F) {
	for _, s := range []string{`{"name":"x"}`, `{"name":"x","NAME":"y"}`, `{"allow":["10.0.0.0/8"],"named_forwarding":true}`, `{"name":"x"} {}`, `[]`, `{"name":`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var name *string
		var allow *[]string
		var named *bool
		r := httptest.NewRequest(http.MethodPost, "/api/v1/nodes", strings.NewReader(body))
		err := decodeExact(httptest.NewRecorder(), r, map[string]any{"name": &name, "allow": &allow, "named_forwarding": &named})
		if err != nil {
			return
		}
		// Accepted: any key spelled other than exactly must be absent.
		for _, k := range []string{`"NAME"`, `"Name"`, `"ALLOW"`, `"Allow"`} {
			if strings.Contains(body, k+":") && !strings.Contains(body, `\`) {
				t.Fatalf("accepted %q with key %s", body, k)
			}
		}
	})
}

// FuzzHostCheck: the Host check never panics, and accepts only the public
// URL's host or, when allowed, a loopback name.
func FuzzHostCheck(f *testing.F) {
	for _, s := range []string{"hub.example.com", "hub.example.com:443", "evil.example", "localhost:8080", "[::1]:80", "127.0.0.1.evil.example", "HUB.EXAMPLE.COM.", "[", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, host string, loopback bool) {
		hc, err := newHostCheck("https://hub.example.com", loopback)
		if err != nil {
			t.Fatal(err)
		}
		if !hc.ok(host) {
			return
		}
		name, _, err := net.SplitHostPort(host)
		if err != nil {
			name = host
		}
		name = strings.Trim(name, "[]")
		if !strings.EqualFold(strings.TrimSuffix(name, "."), "hub.example.com") && !(loopback && isLoopbackName(name)) {
			t.Fatalf("accepted Host %q (loopback names allowed: %v)", host, loopback)
		}
	})
}

// FuzzParseAllow: allow-list parsing never panics, and what it returns is
// masked.
func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"203.0.113.7/24", "2001:db8::1/32", "127.0.0.1", "::ffff:10.0.0.1", "nonsense", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, item string) {
		ps, err := parseAllow([]string{item})
		if err != nil {
			return
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("parseAllow(%q) = %v: not a valid masked prefix", item, p)
			}
		}
	})
}
