package sqlstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Modes of the database's files: only the owner may read them (they hold
// session and token hashes, and the accounts).
const (
	FileMode fs.FileMode = 0o600
	DirMode  fs.FileMode = 0o700
)

// SecureFiles makes the database file and its -wal and -shm companions
// FileMode, creating the database file (empty, which SQLite takes as a new
// database) with that mode if it does not exist, so that SQLite, which
// gives the companions the database file's mode, never makes them
// readable by others. It returns the files whose modes were wider, for
// the caller to warn about.
func SecureFiles(file string) (fixed []string, err error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	f.Close()
	for _, name := range []string{file, file + "-wal", file + "-shm"} {
		st, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fixed, fmt.Errorf("sqlstore: %w", err)
		}
		if st.Mode().Perm()&^FileMode != 0 {
			if err := os.Chmod(name, FileMode); err != nil {
				return fixed, fmt.Errorf("sqlstore: %w", err)
			}
			fixed = append(fixed, name)
		}
	}
	return fixed, nil
}

// SecureDir creates dir with DirMode, or narrows an existing dir's mode to
// DirMode; fixed reports whether it was wider.
func SecureDir(dir string) (fixed bool, err error) {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return false, fmt.Errorf("sqlstore: data directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return false, fmt.Errorf("sqlstore: data directory: %w", err)
	}
	if st.Mode().Perm()&^DirMode == 0 {
		return false, nil
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return false, fmt.Errorf("sqlstore: data directory: %w", err)
	}
	return true, nil
}
