package tcp

import (
	"net/netip"
	"testing"
)

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct {
		ip, name, want string
	}{
		{"203.0.113.7", "203.0.113.7:5000", "203.0.113.7"},
		{"2001:db8:1:2:aaaa::1", "[2001:db8:1:2:aaaa::1]:5000", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::9", "[2001:db8:1:2:ffff::9]:5000", "2001:db8:1:2::/64"}, // same /64: counted together
		{"2001:db8:1:3::1", "[2001:db8:1:3::1]:5000", "2001:db8:1:3::/64"},
		{"", "pipe:1", "pipe"},
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := sourceKey(ip, tc.name); got != tc.want {
			t.Errorf("sourceKey(%s, %s) = %q, want %q", tc.ip, tc.name, got, tc.want)
		}
	}
}

func TestAllowListMatching(t *testing.T) {
	l := newAllowList([]netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"), // IPv4-mapped: means 198.51.100.0/24
		netip.MustParsePrefix("2001:db8::/32"),
	})
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"203.0.113.200", true},
		{"203.0.114.1", false},
		{"198.51.100.9", true},
		{"::ffff:203.0.113.5", true}, // a mapped peer address
		{"2001:db8:ffff::1", true},
		{"2001:db9::1", false},
		{"", false}, // not a TCP peer: refused by a non-empty list
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := l.admits(ip); got != tc.want {
			t.Errorf("admits(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if !allowList(nil).admits(netip.Addr{}) {
		t.Error("an empty list does not admit everyone")
	}
}
