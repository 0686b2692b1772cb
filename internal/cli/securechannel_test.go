package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/cli"
)

// scBuffer is a bytes.Buffer safe for the concurrent writes of a running
// command's logger.
type scBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *scBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *scBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var scIdentityLine = regexp.MustCompile(`^identity: ([0-9a-f]{64})$`)

var scForwardingLine = regexp.MustCompile(`^forwarding address: (1#127\.0\.0\.1:\d+ => 0#[0-9a-f]{16})$`)

// TestSecureChannelCLI runs "secure-channel listen" against an in-process
// hub and "send --secure" through the forwarder it prints.
func TestSecureChannelCLI(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the hub and listener stop
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config) // the default key and known-peers files go here
	_, hubAddr := hubtest.Start(t, hub.Config{})
	keyFile := filepath.Join(t.TempDir(), "listener.key")

	id, fwd, _ := scListener(t, hubAddr, "--key", keyFile)

	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	t.Cleanup(func() {
		// send without --key used the default identity, and without --peer
		// recorded the listener in the default known-peers file.
		if fi, err := os.Stat(filepath.Join(config, "ockamhub", "identity.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("default key file: %v; want one of mode 0600", err)
		}
		known, err := os.ReadFile(filepath.Join(config, "ockamhub", "known_peers"))
		if want := id + " " + fwd + " => 0#secure_channel\n"; err != nil || string(known) != want {
			t.Errorf("known peers %q, %v; want %q", known, err, want)
		}
	})

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stdout  string
		errLike string
	}{
		{"echo", []string{"send", "--secure", "--route", fwd + " => secure_channel", "hello"}, 0, "hello\n", ""},
		{"flags after", []string{"send", "hello again", "--route", fwd + " => secure_channel", "--secure", "--to", "echo_service"}, 0, "hello again\n", ""},
		{"unknown worker", []string{"send", "--secure", "--timeout", "500ms", "--route", fwd + " => secure_channel", "--to", "nobody", "x"}, 1, "", "timed out"},
		// The hub's echo_service sends M1 back: not an M2, so it is dropped.
		{"echo is no listener", []string{"send", "--secure", "--timeout", "500ms", "--route", "1#" + hubAddr + " => echo_service", "x"}, 1, "", "timed out"},
		{"to without secure", []string{"send", "--to", "echoer", "--route", fwd, "x"}, 2, "", "--to needs --secure"},
		{"peer without secure", []string{"send", "--peer", id, "--route", fwd, "x"}, 2, "", "--peer needs --secure"},
		{"pinned", []string{"send", "--secure", "--peer", id, "--route", fwd + " => secure_channel", "pinned"}, 0, "pinned\n", ""},
		{"pinned to another", []string{"send", "--secure", "--peer", strings.Repeat("ab", 32), "--route", fwd + " => secure_channel", "x"}, 1, "", "not the pinned identity " + strings.Repeat("ab", 32)},
		{"bad peer", []string{"send", "--secure", "--peer", "abc", "--route", fwd + " => secure_channel", "x"}, 2, "", "bad --peer"},
		{"peer and insecure", []string{"send", "--secure", "--peer", id, "--insecure-accept-any-peer", "--route", fwd + " => secure_channel", "x"}, 2, "", "contradict"},
		{"bad to", []string{"send", "--secure", "--to", "1#a#b", "--route", fwd, "x"}, 2, "", "bad --to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb scBuffer
			code := cli.Main(t.Context(), tc.args, &out, &errb)
			if code != tc.code || out.String() != tc.stdout {
				t.Fatalf("exit %d, stdout %q; want %d, %q; stderr:\n%s", code, out.String(), tc.code, tc.stdout, errb.String())
			}
			if tc.errLike != "" {
				msg := errb.String()
				if !strings.Contains(msg, tc.errLike) {
					t.Errorf("stderr %q does not mention %q", msg, tc.errLike)
				}
				if tc.code == 1 && strings.Count(msg, "\n") != 1 {
					t.Errorf("error is not one line: %q", msg)
				}
			}
		})
	}
}

func TestSecureChannelCLIUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"secure-channel", "--help"}, 0, "listen"},
		{[]string{"secure-channel", "listen", "--help"}, 0, "--key"},
		{[]string{"send", "--help"}, 0, "--secure"},
		{[]string{"secure-channel"}, 2, "want a command"},
		{[]string{"secure-channel", "dial"}, 2, "unknown command"},
		{[]string{"secure-channel", "listen"}, 2, "--hub is required"},
		{[]string{"secure-channel", "listen", "--hub", "nohost"}, 2, "HOST:PORT"},
		{[]string{"help"}, 0, "secure-channel"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb scBuffer
			code := cli.Main(t.Context(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Errorf("exit %d, output %q%q; want %d and %q", code, out.String(), errb.String(), tc.code, tc.want)
			}
		})
	}
}

// TestSecureChannelCLIRefusesOpenKey: a key file others can read is refused
// with a one-line error, before anything connects.
func TestSecureChannelCLIRefusesOpenKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("11", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb scBuffer
	code := cli.Main(t.Context(), []string{"secure-channel", "listen", "--hub", "127.0.0.1:1", "--key", keyFile}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "chmod 600") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("exit %d, stderr %q; want 1 and a one-line error suggesting chmod 600", code, errb.String())
	}
}
