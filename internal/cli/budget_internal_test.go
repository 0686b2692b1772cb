package cli

import (
	"flag"
	"io"
	"log/slog"
	"testing"
)

func TestFDReserve(t *testing.T) {
	for _, tc := range []struct{ limit, want int }{
		{20000, 2000},     // a tenth
		{3000, 1024},      // at least 1024
		{1024, 512},       // a tiny limit: half
		{1 << 20, 104857}, // large
	} {
		if got := fdReserve(tc.limit); got != tc.want {
			t.Errorf("fdReserve(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestServeConnDefaults: serve's protective defaults, and flags given on
// the command line win over them.
func TestServeConnDefaults(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name                   string
		args                   []string
		total                  int
		wantPerNode, wantPerIP int
		wantPerIPTotal         int // one address across all nodes
	}{
		{"defaults, a large budget", nil, 100000, 4096, 256, 25000},
		{"defaults, a small budget: a quarter per node", nil, 2000, 500, 256, 500},
		{"explicit per-node cap kept", []string{"--max-conns", "3000"}, 2000, 3000, 256, 500},
		{"explicit per-IP cap over a quarter", []string{"--max-conns-per-ip", "800"}, 2000, 500, 800, 800},
		{"explicit no limits", []string{"--max-conns", "0", "--max-conns-per-ip", "0"}, 2000, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			hf := hubFlags(fs, true)
			setServeDefaults(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := hf.config()
			if err != nil {
				t.Fatal(err)
			}
			b := applyConnBudget(log, fs, tc.total, &cfg)
			if cfg.TCP.MaxConns != tc.wantPerNode || cfg.TCP.MaxConnsPerIP != tc.wantPerIP {
				t.Errorf("per node %d, per IP %d; want %d, %d", cfg.TCP.MaxConns, cfg.TCP.MaxConnsPerIP, tc.wantPerNode, tc.wantPerIP)
			}
			if b.perIPTotal != tc.wantPerIPTotal {
				t.Errorf("per IP across nodes %d, want %d", b.perIPTotal, tc.wantPerIPTotal)
			}
			if cfg.TCP.Budget == nil || cfg.TCP.Budget.Limit() != tc.total || b.total != tc.total {
				t.Errorf("budget %v, want %d", cfg.TCP.Budget, tc.total)
			}
			if cfg.TCP.IdleTimeout != 0 {
				t.Errorf("idle timeout %v: quiet 2021 peers (no heartbeats) would be cut off", cfg.TCP.IdleTimeout)
			}
			if b.fdLimit <= 0 || b.reserve != fdReserve(b.fdLimit) {
				t.Errorf("fd limit %d, reserve %d", b.fdLimit, b.reserve)
			}
		})
	}
}
