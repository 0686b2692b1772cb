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
	"runtime"

	"github.com/ockamhub/ockamhub/noise"
)

// maxKeyFileSize bounds what LoadOrCreateKey reads: 64 hex digits and a
// newline, with room for a CRLF or stray white space.
const maxKeyFileSize = 128

// LoadOrCreateKey returns the static key pair stored at path, creating it
// first if the file does not exist. Beyond 2021: Rust's 2021 channels used a
// fresh key per channel, so a peer could never be recognised; a persistent
// key, whose public half a peer pins, is what lets a channel authenticate.
//
// The file holds the 32-byte X25519 private key as 64 hex digits and a
// newline. A new file is written with mode 0600 and appears atomically, so
// concurrent callers agree on one key. An existing file that group or others
// may access (mode & 0o077 != 0) is refused with an error wrapping
// ErrKeyPermissions, as ssh refuses such keys; a file that does not hold a
// key gives ErrKeyFile. (The permission check is skipped on Windows, where
// modes do not describe access.)
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

// loadKey reads and checks an existing key file.
func loadKey(path string) (noise.KeyPair, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return noise.KeyPair{}, err
		}
		return noise.KeyPair{}, fmt.Errorf("securechannel: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of whatever path names now
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("securechannel: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return noise.KeyPair{}, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return noise.KeyPair{}, fmt.Errorf("%w: %s has mode %#o; run chmod 600 %s", ErrKeyPermissions, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("securechannel: reading %s: %w", path, err)
	}
	var priv noise.Key
	text := bytes.TrimSpace(b)
	if len(b) > maxKeyFileSize || len(text) != hex.EncodedLen(len(priv)) {
		return noise.KeyPair{}, fmt.Errorf("%w: %s does not hold 64 hex digits", ErrKeyFile, path)
	}
	if _, err := hex.Decode(priv[:], text); err != nil {
		return noise.KeyPair{}, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	kp, err := noise.NewKeyPair(priv)
	if err != nil {
		return noise.KeyPair{}, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	return kp, nil
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
	text := hex.AppendEncode(nil, kp.Private[:])
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
