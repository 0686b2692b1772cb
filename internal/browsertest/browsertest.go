// Package browsertest starts headless Chromium for tests through chromedp.
// Tests that need a browser skip when Chromium is not installed, unless the
// environment sets OCKAMHUB_REQUIRE_ALL=1 (as CI does), in which case they
// fail.
//
// It is test support: import it only from _test.go files.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath is where the tests expect Chromium (Debian's chromium package);
// a chromium on PATH is used when it is not there.
const ExecPath = "/usr/bin/chromium"

// RequireAllEnv names the variable that turns skips into failures.
const RequireAllEnv = "OCKAMHUB_REQUIRE_ALL"

// Timeout bounds a whole browser session.
const Timeout = 60 * time.Second

// New starts a headless Chromium with a fresh profile and returns a
// context for one tab, ended (and the browser killed) when t ends.
func New(t testing.TB) context.Context {
	t.Helper()
	path := ExecPath
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath("chromium"); lerr == nil {
			path = p
		} else {
			msg := "the browser test needs Chromium at " + ExecPath + " or on PATH (apt-get install -y chromium)"
			if os.Getenv(RequireAllEnv) == "1" {
				t.Fatal(msg + "; " + RequireAllEnv + "=1 makes its absence a failure")
			}
			t.Skip(msg)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.DisableGPU,
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	// Start the browser now, so a broken install fails here, clearly.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return tabCtx
}
