package securechannel_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/securechannel"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "static.key")
	kp, err := securechannel.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if kp == (noise.KeyPair{}) {
		t.Fatal("zero key pair")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	again, err := securechannel.LoadOrCreateKey(path)
	if err != nil || again != kp {
		t.Errorf("reload = %x, %v; want the same key %x", again.Public, err, kp.Public)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want just the key", len(entries))
	}
	// The file is the private key in hex: a known key loads as itself.
	want, err := noise.NewKeyPair(noise.Key{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known.key")
	if err := os.WriteFile(known, []byte("0102030000000000000000000000000000000000000000000000000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := securechannel.LoadOrCreateKey(known); err != nil || got != want {
		t.Errorf("known key = %x, %v; want %x", got.Public, err, want.Public)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not describe access on Windows")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          error
	}{
		{"group readable", strings.Repeat("ab", 32), 0o640, securechannel.ErrKeyPermissions},
		{"world readable", strings.Repeat("ab", 32), 0o604, securechannel.ErrKeyPermissions},
		{"group writable", strings.Repeat("ab", 32), 0o620, securechannel.ErrKeyPermissions},
		{"empty", "", 0o600, securechannel.ErrKeyFile},
		{"short", "abcd", 0o600, securechannel.ErrKeyFile},
		{"not hex", strings.Repeat("zz", 32), 0o600, securechannel.ErrKeyFile},
		{"raw bytes", strings.Repeat("\x01", 32), 0o600, securechannel.ErrKeyFile},
		{"too long", strings.Repeat("ab", 100), 0o600, securechannel.ErrKeyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := securechannel.LoadOrCreateKey(path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Error("the refused file was modified")
			}
		})
	}
	if _, err := securechannel.LoadOrCreateKey(dir); !errors.Is(err, securechannel.ErrKeyFile) && !errors.Is(err, securechannel.ErrKeyPermissions) {
		t.Errorf("a directory: %v", err)
	}
	if _, err := securechannel.LoadOrCreateKey(filepath.Join(dir, "missing", "k")); err == nil {
		t.Error("a key in a missing directory was created")
	}
}

// TestLoadOrCreateKeyConcurrent: callers racing to create the same file all
// end up with one key.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	keys := make([]noise.KeyPair, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			var err error
			if keys[i], err = securechannel.LoadOrCreateKey(path); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, k := range keys {
		if k != keys[0] {
			t.Errorf("caller %d got another key", i)
		}
	}
}
