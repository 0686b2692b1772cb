package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// signInFrom posts the development sign-in to h as if from remote
// ("[2001:db8::1]:5000"), in process: no IPv6 network is needed to show
// how sources are counted.
func signInFrom(h http.Handler, remote, user string) int {
	req := httptest.NewRequest(http.MethodPost, "/auth/local", strings.NewReader(url.Values{"username": {user}}.Encode()))
	req.Host = "127.0.0.1"
	req.RemoteAddr = remote
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// TestSignInRateLimitPerSubnet: the per-address sign-in limit counted
// single IPv6 addresses, so one subscriber's /64 (2^64 addresses) made an
// account per request: 200 sign-ins from 200 addresses of one /64 all
// succeeded, and each filled a slot of the limiter's table, which at its
// bound pushes every new source onto one shared bucket. Now a /64 is one
// source; IPv4-mapped addresses count as their IPv4 address; and another
// network still signs in.
func TestSignInRateLimitPerSubnet(t *testing.T) {
	s := newServer(t, options{signIns: 60})
	h := s.Config.Handler
	tests := []struct {
		name   string
		remote func(i int) string
	}{
		{"one IPv6 /64", func(i int) string { return fmt.Sprintf("[2001:db8:1:2::%x]:5000", i+1) }},
		{"one IPv6 /64, zoned", func(i int) string { return fmt.Sprintf("[fe80::%x%%eth%d]:5000", i+1, i) }},
		{"one IPv4, mapped or not", func(i int) string {
			if i%2 == 0 {
				return "[::ffff:198.51.100.7]:5000"
			}
			return "198.51.100.7:5001"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			created := 0
			for i := range 200 {
				if signInFrom(h, tc.remote(i), fmt.Sprintf("u%d", i)) == http.StatusSeeOther {
					created++
				}
			}
			if created > 10+1 {
				t.Fatalf("200 sign-ins from %s made %d accounts, want at most the burst of 10 (+1 refilled)", tc.name, created)
			}
		})
	}
	if code := signInFrom(h, "[2001:db8:1:3::1]:5000", "neighbour"); code != http.StatusSeeOther {
		t.Fatalf("sign-in from the next /64: %d, want 303", code)
	}
}
