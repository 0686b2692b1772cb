//go:build linux

package portal

import (
	"io"
	"net"
	"os"
	"syscall"
)

// directConn returns what tryWrite needs to write to nc without waiting,
// or nil when nc is not a TCP socket (the writer goroutine writes then).
func directConn(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryWrite writes p to rc with one non-blocking write and returns the
// bytes the socket took: fewer than asked (even 0) when its buffer is
// full, and 0 after any error (the writer goroutine, writing the rest
// with a blocking write, meets the error again and handles it). It never
// waits for the socket.
func tryWrite(rc syscall.RawConn, p []byte) int {
	var n int
	err := rc.Write(func(fd uintptr) bool {
		for {
			k, err := syscall.Write(int(fd), p)
			if err == syscall.EINTR {
				continue
			}
			if err == nil && k > 0 {
				n = k
			}
			return true // done, whatever happened: never wait
		}
	})
	if err != nil {
		return 0
	}
	return n
}

// readRaw reads into p from rc as net.Conn.Read does (io.EOF at the end of
// the stream), calling waiting, once, before it waits for the socket to
// have something to read: the reader holds its buffers weakly then
// (recycler.relax).
func readRaw(rc syscall.RawConn, p []byte, waiting func()) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	relaxed := false
	err := rc.Read(func(fd uintptr) bool {
		for {
			k, err := syscall.Read(int(fd), p)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				if !relaxed {
					relaxed = true
					waiting()
				}
				return false // wait until readable, then read again
			case err != nil:
				rerr = os.NewSyscallError("read", err)
			case k == 0:
				rerr = io.EOF
			default:
				n = k
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}
