//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package securechannel

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockWait bounds how long lockFile waits for another program's lock. A
// check runs on a channel's worker goroutine, which must not block for
// ever on a program that holds the lock and hangs.
const lockWait = 5 * time.Second

// lockFile takes an exclusive advisory lock on f, released when f is
// closed, so that programs sharing a known-peers file check and record one
// at a time. It polls without blocking, and gives up after lockWait.
func lockFile(f *os.File) error {
	fd := int(f.Fd())
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another program has held the lock for %s: %w", lockWait, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
