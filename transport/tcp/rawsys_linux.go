//go:build linux && !race

package tcp

import (
	"syscall"
	"unsafe"
)

// sysRead and sysWritev are read(2) and writev(2) on a connection's
// socket, which is non-blocking (the runtime's poller waits for it): they
// return at once, so they are made without telling the scheduler
// (RawSyscall). Syscall would release the goroutine's P and take it back,
// and on a process idle between messages (one message in flight) wake
// the runtime's monitor thread, asleep while every P was idle, on each of
// them: a futex call on the path of every read and write. A call
// interrupted by a signal returns EINTR, which the callers retry.
//
// Under the race detector they are syscall.Read and syscall.Syscall
// (rawsys_race_linux.go): syscall.Read tells the detector about the
// memory it writes.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(base), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

func sysWritev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
