//go:build unix

package securechannel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

const checkModes = true

// openNoFollow opens path read-only without following a final symbolic
// link (O_NOFOLLOW) and without blocking on a FIFO or device (O_NONBLOCK),
// then puts the descriptor back in blocking mode for reading.
func openNoFollow(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openAppendNoFollow opens path for reading and appending, creating it
// with mode 0600 if missing, without following a final symbolic link and
// without blocking, then puts the descriptor back in blocking mode.
func openAppendNoFollow(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_APPEND|syscall.O_CREAT|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openNonBlocking opens path read-only, following links, without blocking
// on a FIFO or device, then puts the descriptor back in blocking mode.
func openNonBlocking(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkOwnerOrRoot refuses a file owned by another user than the current
// one or root: its owner could rewrite it.
func checkOwnerOrRoot(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return checkOwner(path, fi)
}

// isSymlinkErr reports whether err is O_NOFOLLOW's refusal of a link.
func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }

// checkOwner refuses a file not owned by the current user.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by the current user (uid %d)", ErrKeyPermissions, path, st.Uid, uid)
	}
	return nil
}
