package securechannel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// KnownPeers is a known-peers file, the secure channel's SSH known_hosts:
// it records the identity first seen for a name (the CLI uses the route
// text) and refuses a later, different one (trust on first use). Each line
// is "IDENTITY NAME"; NAME is the rest of the line and may hold spaces, as
// route texts do. Blank lines and lines starting with # are ignored.
//
// The file is read on every check, so edits by hand (deleting a line to
// accept a changed identity) take effect at once, and it is opened with the
// rules of LoadOrCreateKey, except that others may read it (it holds no
// secret): owned by the current user, not writable by group or others, no
// symbolic link. New entries are appended with mode 0600 files.
//
// How to use it, as "send --secure" without --peer does:
//
//	kp, _ := securechannel.OpenKnownPeers(path) // path from DefaultKnownPeersPath
//	cfg := securechannel.Config{VerifyPeer: kp.Verifier(route.String())}
//
// A KnownPeers is safe for concurrent use within a process. Across
// programs, Check reads and records under an exclusive lock of the file
// (flock, where the system has it), so two programs meeting a route at once
// record one identity, and the other is refused as a change; each line is
// written whole, in one append. The file is opened once per check, with
// O_NOFOLLOW, and checked on the open descriptor, so a link or another
// user's file swapped in meanwhile is never read or written through.
type KnownPeers struct {
	path string
	mu   sync.Mutex
}

// maxKnownPeersSize bounds what a known-peers file may hold.
const maxKnownPeersSize = 4 << 20

// OpenKnownPeers returns the known-peers file at path. The file need not
// exist yet; it is created by the first recorded identity.
func OpenKnownPeers(path string) *KnownPeers { return &KnownPeers{path: path} }

// Path returns the file's path.
func (k *KnownPeers) Path() string { return k.path }

// Lookup returns the identity recorded for name and its line number, or
// ok == false when there is none.
func (k *KnownPeers) Lookup(name string) (id Identity, line int, ok bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lookup(name)
}

func (k *KnownPeers) lookup(name string) (Identity, int, bool, error) {
	f, err := openPrivate(k.path, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Identity{}, 0, false, nil
		}
		return Identity{}, 0, false, fmt.Errorf("known peers: %w", err)
	}
	defer f.Close()
	return k.scan(f, name)
}

// scan reads the known-peers file f and returns the identity recorded for
// name, its line, or ok == false.
func (k *KnownPeers) scan(f *os.File, name string) (Identity, int, bool, error) {
	b, err := io.ReadAll(io.LimitReader(f, maxKnownPeersSize+1))
	if err != nil {
		return Identity{}, 0, false, fmt.Errorf("securechannel: reading %s: %w", k.path, err)
	}
	if len(b) > maxKnownPeersSize {
		return Identity{}, 0, false, fmt.Errorf("%w: %s is larger than %d bytes", ErrIdentity, k.path, maxKnownPeersSize)
	}
	for i, line := range bytes.Split(b, []byte("\n")) {
		text := strings.TrimSpace(string(line))
		if text == "" || text[0] == '#' {
			continue
		}
		// The identity ends at the first blank, space or tab (a line
		// written by hand may use either); the name is the rest.
		idText, rest := text, ""
		if i := strings.IndexAny(text, " \t"); i >= 0 {
			idText, rest = text[:i], text[i+1:]
		}
		if strings.TrimSpace(rest) != name {
			continue
		}
		id, err := ParseIdentity(idText)
		if err != nil {
			return Identity{}, 0, false, fmt.Errorf("%s:%d: %w", k.path, i+1, err)
		}
		return id, i + 1, true, nil
	}
	return Identity{}, 0, false, nil
}

// Add records id for name by appending a line. It does not check for an
// existing entry; Check and Verifier do.
func (k *KnownPeers) Add(name string, id Identity) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.add(name, id)
}

func (k *KnownPeers) add(name string, id Identity) error {
	f, err := k.openLocked()
	if err != nil {
		return err
	}
	defer f.Close()
	return k.appendLine(f, name, id)
}

// checkName refuses a name that cannot be one line's key: it would not be
// found again, or would write a second line.
func checkName(name string) error {
	if strings.ContainsAny(name, "\r\n") || strings.TrimSpace(name) != name || name == "" {
		return fmt.Errorf("securechannel: known peers: bad name %q", name)
	}
	return nil
}

// openLocked opens the file for reading and appending, creating it with
// mode 0600, with the reading rules checked on the descriptor itself (no
// link followed, no blocking open, a regular file of ours that others
// cannot write), and locks it against other programs until it is closed.
func (k *KnownPeers) openLocked() (*os.File, error) {
	f, err := openAppendNoFollow(k.path)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, fmt.Errorf("known peers: %w: %s is a symbolic link; name the file itself", ErrKeyPermissions, k.path)
		}
		return nil, fmt.Errorf("securechannel: known peers: %w", err)
	}
	if err := checkOpened(f, k.path, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("known peers: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("securechannel: known peers: locking %s: %w", k.path, err)
	}
	return f, nil
}

// appendLine appends "IDENTITY NAME" to f, opened with O_APPEND, in one
// write, so it is whole even if another writer appends too.
func (k *KnownPeers) appendLine(f *os.File, name string, id Identity) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := f.Write([]byte(id.String() + " " + name + "\n")); err != nil {
		return fmt.Errorf("securechannel: known peers: %w", err)
	}
	return nil
}

// Check verifies that id is the identity recorded for name. With no record
// it records id and returns first == true (trust on first use); with a
// different record it returns a *PeerChangedError wrapping ErrPeerChanged.
func (k *KnownPeers) Check(name string, id Identity) (first bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := checkName(name); err != nil {
		return false, err
	}
	// Read and, on first use, record under one file lock, so that two
	// programs meeting the route at once cannot both record (and accept)
	// different identities.
	f, err := k.openLocked()
	if errors.Is(err, fs.ErrPermission) {
		// A file made read-only by its owner still pins what it records;
		// only a first use, which must be recorded, fails.
		known, line, ok, lerr := k.lookup(name)
		switch {
		case lerr != nil:
			return false, lerr
		case !ok:
			return false, err
		case known != id:
			return false, &PeerChangedError{Name: name, Known: known, Got: id, File: k.path, Line: line}
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	known, line, ok, err := k.scan(f, name)
	if err != nil {
		return false, err
	}
	if !ok {
		if err := k.appendLine(f, name, id); err != nil {
			return false, err
		}
		return true, f.Close()
	}
	if known != id {
		return false, &PeerChangedError{Name: name, Known: known, Got: id, File: k.path, Line: line}
	}
	return false, nil
}

// Verifier returns a function for Config.VerifyPeer that checks the
// responder against the identity recorded for name, recording it on first
// use. onFirst, if not nil, is called after a first-use record (the CLI
// prints a notice).
func (k *KnownPeers) Verifier(name string, onFirst ...func(Identity)) func(Identity) error {
	return func(id Identity) error {
		first, err := k.Check(name, id)
		if err == nil && first {
			for _, f := range onFirst {
				f(id)
			}
		}
		return err
	}
}

// PeerChangedError is the error of a known-peers check that found another
// identity than the one recorded. It wraps ErrPeerChanged.
type PeerChangedError struct {
	Name       string   // the name (route) checked
	Known, Got Identity // the recorded identity and the one presented
	File       string   // the known-peers file
	Line       int      // the line of the record
}

func (e *PeerChangedError) Error() string {
	return fmt.Sprintf("securechannel: the identity of %s CHANGED: %s:%d records %s, but the peer presented %s. "+
		"Someone may be intercepting the channel (a man in the middle), or the peer got a new key. "+
		"If you know the change is genuine, delete line %d of %s, or pin the new identity with --peer %s",
		e.Name, e.File, e.Line, e.Known, e.Got, e.Line, e.File, e.Got)
}

func (e *PeerChangedError) Unwrap() error { return ErrPeerChanged }
