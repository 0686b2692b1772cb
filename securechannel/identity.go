package securechannel

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ockamhub/ockamhub/noise"
)

// Identity is the static X25519 public key of a channel end: what a Noise XX
// handshake proves the peer holds, and so what an initiator pins and a
// listener allows. Beyond 2021: Rust's 2021 channels made a fresh key per
// channel, so an identity only means something when the key is kept
// (LoadOrCreateKey, DefaultKeyPath) and its text form is compared by people
// or stored (KnownPeers, allow-lists).
//
// Its text form is the 64 lowercase hex digits of the public key, the same
// digits a 2021 Rust program logs for a key, so a user can paste either.
// ParseIdentity reads it back. The zero Identity is "none".
//
// How to use it:
//
//	kp, _ := securechannel.LoadOrCreateKey(path)      // or DefaultKeyPath()
//	id := securechannel.IdentityOf(kp)                 // print id.String()
//	peer, _ := securechannel.ParseIdentity(text)       // --peer
//	cfg := securechannel.Config{StaticKeyPair: kp, ExpectedPeerStatic: peer.Key()}
//	lcfg := securechannel.ListenerConfig{StaticKeyPair: kp, Authorized: securechannel.AllowIdentities(ids...)}
type Identity noise.Key

// IdentityOf returns the identity (public key) of kp.
func IdentityOf(kp noise.KeyPair) Identity { return Identity(kp.Public) }

// IdentityFromKey returns the identity of the static public key k, for
// example Channel.PeerStatic or Listener.StaticPublic.
func IdentityFromKey(k noise.Key) Identity { return Identity(k) }

// Key returns the public key, for Config.ExpectedPeerStatic.
func (id Identity) Key() noise.Key { return noise.Key(id) }

// IsZero reports whether id is the zero Identity (no identity).
func (id Identity) IsZero() bool { return id == Identity{} }

// String returns the 64 lowercase hex digits of the public key.
func (id Identity) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler with the String form.
func (id Identity) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, id[:]), nil }

// UnmarshalText implements encoding.TextUnmarshaler; see ParseIdentity.
func (id *Identity) UnmarshalText(b []byte) error {
	v, err := ParseIdentity(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseIdentity parses the text form of an identity: 64 hex digits (either
// case), surrounding white space ignored. An all-zero key, or one that is a
// low-order X25519 point no handshake could prove, is refused. Errors wrap
// ErrIdentity and repeat at most the input's length, not its content.
func ParseIdentity(s string) (Identity, error) {
	s = strings.TrimSpace(s)
	var id Identity
	if len(s) != hex.EncodedLen(len(id)) {
		return Identity{}, fmt.Errorf("%w: want 64 hex digits, got %d characters", ErrIdentity, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return Identity{}, fmt.Errorf("%w: want 64 hex digits", ErrIdentity)
	}
	if id.IsZero() {
		return Identity{}, fmt.Errorf("%w: the all-zero key", ErrIdentity)
	}
	return id, nil
}

// AllowIdentities returns an authorization function for
// ListenerConfig.Authorized that admits exactly the given identities. The
// result is safe for concurrent use.
func AllowIdentities(ids ...Identity) func(noise.Key) bool {
	keys := make([]noise.Key, len(ids))
	for i, id := range ids {
		keys[i] = id.Key()
	}
	return AllowKeys(keys...)
}

// maxAllowFileSize bounds ReadAllowFile.
const maxAllowFileSize = 1 << 20

// ReadAllowFile reads an allow-list file: one identity per line, optionally
// followed by white space and a comment; blank lines and lines starting
// with # are skipped. It is how "--allow-file" is read. A line that does not
// parse gives an error wrapping ErrIdentity that names the file and line.
//
// Whoever can write the file admits themselves, so it must be a regular
// file owned by the current user or root that group and others cannot
// write (ErrKeyPermissions otherwise); it is opened without blocking, so a
// FIFO is refused rather than hanging. A symbolic link is followed (a
// shared list may be linked); the file reached is what is checked.
func ReadAllowFile(path string) ([]Identity, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, fmt.Errorf("securechannel: allow-list: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("securechannel: allow-list: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: allow-list %s is not a regular file", ErrIdentity, path)
	}
	if err := checkOwnerOrRoot(path, fi); err != nil {
		return nil, fmt.Errorf("allow-list: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && checkModes {
		return nil, fmt.Errorf("%w: allow-list %s has mode %#o, writable by others; run chmod 644 %s", ErrKeyPermissions, path, perm, path)
	}
	return parseIdentityLines(io.LimitReader(f, maxAllowFileSize), path)
}

func parseIdentityLines(r io.Reader, name string) ([]Identity, error) {
	var ids []Identity
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		field, _, _ := strings.Cut(string(text), " ")
		field, _, _ = strings.Cut(field, "\t")
		id, err := ParseIdentity(field)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("securechannel: reading %s: %w", name, err)
	}
	return ids, nil
}

// ConfigDir returns the directory ockamhub keeps identities and known peers
// in by default: os.UserConfigDir()/ockamhub ($XDG_CONFIG_HOME/ockamhub or
// ~/.config/ockamhub on Linux). It does not create it.
func ConfigDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("securechannel: no configuration directory (use an explicit file): %w", err)
	}
	return filepath.Join(dir, "ockamhub"), nil
}

// DefaultKeyFile and DefaultKnownPeersFile are the file names, in ConfigDir,
// of the default identity key and known-peers file.
const (
	DefaultKeyFile        = "identity.key"
	DefaultKnownPeersFile = "known_peers"
)

// DefaultKeyPath returns ConfigDir()/identity.key, the key file the CLI
// uses when no --key is given, creating ConfigDir with mode 0700 if needed.
func DefaultKeyPath() (string, error) { return defaultPath(DefaultKeyFile) }

// DefaultKnownPeersPath returns ConfigDir()/known_peers, the known-peers
// file the CLI uses when no --known-peers is given, creating ConfigDir with
// mode 0700 if needed.
func DefaultKnownPeersPath() (string, error) { return defaultPath(DefaultKnownPeersFile) }

func defaultPath(name string) (string, error) {
	dir, err := ConfigDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("securechannel: %w", err)
	}
	return filepath.Join(dir, name), nil
}
