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

// tryRead reads what the socket behind rc already holds into p, with one
// non-blocking read, and returns the bytes read: 0 when nothing has
// arrived yet, or after any error or the end of the stream (the reader
// meets them again). It never waits for the client: a server-speaks-first
// protocol (SSH) sends nothing until the server has spoken.
func tryRead(rc syscall.RawConn, p []byte) int {
	var n int
	err := rc.Read(func(fd uintptr) bool {
		for {
			k, err := syscall.Read(int(fd), p)
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

// rawReader reads from a socket as net.Conn.Read does, telling its
// caller before it waits (read). One per portal: the function handed to
// syscall.RawConn.Read is made once, not at every read.
type rawReader struct {
	rc      syscall.RawConn
	fn      func(fd uintptr) bool
	p       []byte
	n       int
	err     error
	waiting func()
	relaxed bool
}

func newRawReader(rc syscall.RawConn) *rawReader {
	r := &rawReader{rc: rc}
	r.fn = r.attempt
	return r
}

// read reads into p (io.EOF at the end of the stream), calling waiting,
// once, before it waits for the socket to have something to read: the
// reader holds its buffers weakly then (recycler.relax).
func (r *rawReader) read(p []byte, waiting func()) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.err, r.waiting, r.relaxed = p, 0, nil, waiting, false
	err := r.rc.Read(r.fn)
	n, rerr := r.n, r.err
	r.p, r.waiting = nil, nil
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// attempt is one non-blocking read; false: wait until readable, then
// attempt again.
func (r *rawReader) attempt(fd uintptr) bool {
	for {
		k, err := syscall.Read(int(fd), r.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if !r.relaxed {
				r.relaxed = true
				r.waiting()
			}
			return false
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case k == 0:
			r.err = io.EOF
		default:
			r.n = k
		}
		return true
	}
}
