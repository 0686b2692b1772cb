//go:build linux && race

package tcp

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWritev: see rawsys_linux.go. Under the race detector
// the read is syscall.Read, which tells the detector about the memory it
// writes.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return 0, e
		}
		return 0, syscall.EIO
	}
	return n, 0
}

func sysWritev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
