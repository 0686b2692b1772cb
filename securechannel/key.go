package securechannel

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ockamhub/ockamhub/noise"
)

// maxKeyFileSize bounds what LoadOrCreateKey reads: 64 hex digits and a
// newline, with room for a CRLF or stray white space.
const maxKeyFileSize = 128

// LoadOrCreateKey returns the static key pair stored at path, creating it
// first if the file does not exist. Beyond 2021: Rust's 2021 channels used a
// fresh key per channel, so a peer could never be recognised; a persistent
// key, whose public half (IdentityOf) a peer pins, is what lets a channel
// authenticate.
//
// The file holds the 32-byte X25519 private key as 64 hex digits and a
// newline. A new file is written with mode 0600 and appears atomically, so
// concurrent callers agree on one key. An existing file is opened without
// following a symbolic link and without blocking (a FIFO cannot hang the
// caller), and must be a regular file owned by the current user that group
// and others cannot access (mode 0600 or 0400), as ssh requires of its keys:
// otherwise the error wraps ErrKeyPermissions. A file that does not hold a
// key gives ErrKeyFile. Errors name the file but never repeat its content.
// (The owner and mode checks are skipped on Windows, where modes do not
// describe access.)
func LoadOrCreateKey(path string) (noise.KeyPair, error) {
	kp, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kp, err
	}
	kp, err = noise.GenerateKeyPair()
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("securechannel: %w", err)
	}
	if err := createKeyFile(path, kp); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path) // another process won the race: use its key
		}
		return noise.KeyPair{}, err
	}
	return kp, nil
}

// LoadKey is LoadOrCreateKey without the creation: a missing file is an
// error wrapping fs.ErrNotExist.
func LoadKey(path string) (noise.KeyPair, error) {
	kp, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return kp, fmt.Errorf("securechannel: key file %s: %w", path, err)
	}
	return kp, err
}

// loadKey reads and checks an existing key file.
func loadKey(path string) (noise.KeyPair, error) {
	f, err := openPrivate(path, true)
	if err != nil {
		return noise.KeyPair{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	defer clear(b)
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("securechannel: reading %s: %w", path, err)
	}
	var priv noise.Key
	defer clear(priv[:])
	text := bytes.TrimSpace(b)
	if len(b) > maxKeyFileSize || len(text) != hex.EncodedLen(len(priv)) {
		return noise.KeyPair{}, fmt.Errorf("%w: %s does not hold 64 hex digits", ErrKeyFile, path)
	}
	if _, err := hex.Decode(priv[:], text); err != nil {
		// Not %w: hex errors quote the offending byte of the secret.
		return noise.KeyPair{}, fmt.Errorf("%w: %s does not hold 64 hex digits", ErrKeyFile, path)
	}
	kp, err := noise.NewKeyPair(priv)
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("%w: %s does not hold an X25519 private key", ErrKeyFile, path)
	}
	return kp, nil
}

// openPrivate opens path for reading with the rules of LoadOrCreateKey: no
// symbolic link followed, no blocking open, a regular file owned by the
// current user, and, when secret, no access for group or others (for a
// non-secret file such as known peers: no write access for them). A missing
// file gives an error wrapping fs.ErrNotExist.
func openPrivate(path string, secret bool) (*os.File, error) {
	f, err := openNoFollow(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if isSymlinkErr(err) {
			return nil, fmt.Errorf("%w: %s is a symbolic link; name the file itself", ErrKeyPermissions, path)
		}
		return nil, fmt.Errorf("securechannel: %w", err)
	}
	if err := checkOpened(f, path, secret); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOpened applies openPrivate's rules to the file f opened as path,
// with fstat: what was opened is checked, not whatever path names now.
func checkOpened(f *os.File, path string, secret bool) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("securechannel: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if err := checkOwner(path, fi); err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if secret && perm&0o077 != 0 && checkModes {
		return fmt.Errorf("%w: %s has mode %#o; run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	if !secret && perm&0o022 != 0 && checkModes {
		return fmt.Errorf("%w: %s has mode %#o, writable by others; run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	return nil
}

// createKeyFile writes kp's private key to a temporary file of mode 0600 in
// path's directory and links it to path, which fails with fs.ErrExist if
// path appeared meanwhile. Readers never see a partial file.
func createKeyFile(path string, kp noise.KeyPair) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ockamhub-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("securechannel: creating key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	text := hex.AppendEncode(make([]byte, 0, 65), kp.Private[:])
	defer clear(text)
	_, err = tmp.Write(append(text, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("securechannel: writing key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("securechannel: creating key file: %w", err)
	}
	return nil
}
