//go:build unix

package securechannel_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/securechannel"
)

// TestKeyFileSafeOpen covers each unsafe key file of issue 13: each is
// refused, quickly (a FIFO must not hang the open), with an error that
// names the file and never repeats its content.
func TestKeyFileSafeOpen(t *testing.T) {
	const secret = "5e" // the digits every planted key is made of
	good := strings.Repeat(secret, 32) + "\n"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  error
	}{
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyFile},
		{"symlink to a good key", func(t *testing.T, path string) {
			target := path + ".target"
			if err := os.WriteFile(target, []byte(good), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyPermissions},
		{"dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink(path+".nowhere", path); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyPermissions},
		{"wrong owner", func(t *testing.T, path string) {
			if os.Getuid() != 0 {
				t.Skip("only root can give a file to another user")
			}
			if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Skipf("cannot chown: %v", err)
			}
		}, securechannel.ErrKeyPermissions},
		{"mode 0644", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyPermissions},
		{"malformed: one bad digit", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat(secret, 31)+"5g\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyFile},
		{"malformed: too short", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat(secret, 20)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, securechannel.ErrKeyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			tc.setup(t, path)
			done := make(chan error, 1)
			go func() {
				_, err := securechannel.LoadOrCreateKey(path)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				// Unblock the open so the goroutine ends, then fail.
				if f, oerr := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); oerr == nil {
					f.Close()
				}
				<-done
				t.Fatal("LoadOrCreateKey hung")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, leak := range []string{secret + secret, "'g'", `"g"`, "U+0067"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q repeats the file's content (%q)", msg, leak)
				}
			}
			if fmt.Sprint(err) != msg {
				t.Error("inconsistent error text")
			}
		})
	}
}

// TestReadAllowFileUnsafe: whoever can write an allow-list admits
// themselves, so a list others may write is refused; a FIFO is refused at
// once instead of hanging the listener's start.
func TestReadAllowFileUnsafe(t *testing.T) {
	id := securechannel.IdentityOf(newKeyPair(t))
	dir := t.TempDir()
	writable := filepath.Join(dir, "writable")
	if err := os.WriteFile(writable, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := securechannel.ReadAllowFile(writable); !errors.Is(err, securechannel.ErrKeyPermissions) {
		t.Errorf("world-writable allow file: %v; want ErrKeyPermissions", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := securechannel.ReadAllowFile(fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO allow file was accepted")
		}
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-done
		t.Fatal("ReadAllowFile hung on a FIFO")
	}
}

// TestKnownPeersReadOnly: a known-peers file its owner made read-only
// still pins the identities it records (Check needs to write only for a
// first use).
func TestKnownPeersReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write a read-only file")
	}
	path := filepath.Join(t.TempDir(), "known_peers")
	a, b := securechannel.IdentityOf(newKeyPair(t)), securechannel.IdentityOf(newKeyPair(t))
	const route = "1#127.0.0.1:4000 => 0#abcd => 0#secure_channel"
	if err := os.WriteFile(path, []byte(a.String()+" "+route+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	kp := securechannel.OpenKnownPeers(path)
	if first, err := kp.Check(route, a); err != nil || first {
		t.Errorf("recorded identity: %v, %v; want accepted", first, err)
	}
	if _, err := kp.Check(route, b); !errors.Is(err, securechannel.ErrPeerChanged) {
		t.Errorf("another identity: %v; want ErrPeerChanged", err)
	}
	if _, err := kp.Check("1#other:1 => 0#x", b); err == nil {
		t.Error("a first use was accepted without being recorded")
	}
}

// TestKnownPeersLockHeld: a program that holds the known-peers lock and
// hangs delays a check by a bounded time, then the check fails; it never
// blocks a channel's worker for ever.
func TestKnownPeersLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_peers")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := securechannel.OpenKnownPeers(path).Check("1#a:1 => 0#b", securechannel.IdentityOf(newKeyPair(t)))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a check passed while another program held the lock")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the check blocked on the lock")
	}
}
