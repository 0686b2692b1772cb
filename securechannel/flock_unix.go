//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package securechannel

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, released when f is
// closed, so that programs sharing a known-peers file check and record one
// at a time.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }
