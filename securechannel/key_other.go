//go:build !unix

package securechannel

import (
	"fmt"
	"io/fs"
	"os"
)

// checkModes is false where file modes do not describe access (Windows).
const checkModes = false

// openNoFollow refuses a symbolic link (checked just before opening) and
// opens path read-only.
func openNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.Open(path)
}

// openAppendNoFollow refuses a symbolic link (checked just before opening)
// and opens path for reading and appending, creating it if missing.
func openAppendNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
}

func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }

func checkOwnerOrRoot(string, fs.FileInfo) error { return nil }

var errSymlink = fmt.Errorf("symbolic link")

func isSymlinkErr(err error) bool { return err == errSymlink }

func checkOwner(string, fs.FileInfo) error { return nil }
