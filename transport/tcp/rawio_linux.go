//go:build linux

package tcp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// iovecs is a wbuf's scratch space for one vectored write: the vector,
// the callback that writes it (made once per wbuf, so that a write
// allocates nothing), and what the write did.
type iovecs struct {
	v   []syscall.Iovec
	fn  func(uintptr) bool
	n   int
	err error
}

// writev is iovecs' callback for RawConn.Write: one non-blocking writev of
// v, which never waits.
func (io *iovecs) writev(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&io.v[0])), uintptr(len(io.v)))
		switch e {
		case 0:
			io.n = int(r)
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			io.err = e
		}
		return true
	}
}

// rawConnOf returns the raw connection of a TCP socket, for the
// non-blocking writes and the buffer-less waits of this package, or nil
// (other connections use the portable paths).
func rawConnOf(nc net.Conn) syscall.RawConn {
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

// tryWrite writes wb's segments with one non-blocking writev and returns
// the bytes the socket took: fewer than asked (even 0) when its buffer is
// full. It never waits.
func (c *conn) tryWrite(wb *wbuf) (int, error) {
	iov := wb.io.v[:0]
	for _, s := range wb.segs {
		if len(s) > 0 {
			iov = append(iov, syscall.Iovec{Base: &s[0]})
			iov[len(iov)-1].SetLen(len(s))
		}
	}
	wb.io.v = iov
	if len(iov) == 0 {
		return 0, nil
	}
	io := &wb.io
	if io.fn == nil {
		io.fn = io.writev
	}
	io.n, io.err = 0, nil
	err := c.rc.Write(io.fn)
	clear(iov)
	n := io.n
	if err == nil {
		err = io.err
	}
	io.err = nil
	return n, err
}

// rawRead is the reader's read callback: it reads into the reader's
// buffer, taking one from the pool only once the socket is readable, and
// giving it back while it waits with nothing buffered.
func (rd *reader) rawRead(fd uintptr) bool {
	for {
		dst := rd.dst
		if dst == nil {
			if rd.buf == nil {
				rd.buf = getReadBuf()
			}
			dst = rd.buf[rd.w:]
			if rd.readMax > 0 && len(dst) > rd.readMax {
				dst = dst[:rd.readMax]
			}
		}
		n, err := syscall.Read(int(fd), dst)
		switch err {
		case nil:
			rd.n, rd.err = n, nil
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if rd.dst == nil && rd.w == 0 {
				// Idle: hold no read buffer, no slab and no decoded
				// head while waiting.
				putReadBuf(rd.buf)
				rd.buf, rd.slab = nil, nil
				rd.headCache = headCache{}
				rd.parkCut()
				if rc := rd.relayCache; rc != nil && !rc.resolved {
					// Nothing relayed lately (a registration, an
					// echo client): no decoded head either.
					rd.relayCache = nil
					putRelayCache(rc)
				}
			}
			return false
		}
		rd.n, rd.err = 0, err
		return true
	}
}

// canSplice: this platform has splice(2), for PipeTails.
const canSplice = true

// spliceTail moves the bytes left in wb's pipe (wb.tailLeft) into the
// socket: without ever waiting (block false: what the socket does not take
// stays for a writer goroutine), or waiting for room under the write
// deadline. Once the pipe is empty it is handed back (PipeTail.Done). A
// socket that does not take spliced pages gets the bytes read back from
// the pipe and written the usual way (by a writer goroutine).
func (c *conn) spliceTail(wb *wbuf, block bool) error {
	fd, _ := wb.tail.Pipe()
	if c.so == nil {
		c.so = &spliceOut{}
		c.so.fn = c.so.attempt
	}
	s := c.so
	s.fd, s.wb, s.block, s.err, s.unsupported = fd, wb, block, nil, false
	err := c.rc.Write(s.fn)
	serr, unsupported := s.err, s.unsupported
	s.wb = nil
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if unsupported {
		if !block {
			return nil
		}
		b := make([]byte, wb.tailLeft)
		if err := readFull(fd, b); err != nil {
			return err
		}
		wb.tailLeft = 0
		wb.tail.Done(true)
		wb.tail = nil
		_, err := c.nc.Write(b)
		return err
	}
	if wb.tailLeft == 0 {
		wb.tail.Done(true)
		wb.tail = nil
	}
	return nil
}

// spliceOut holds spliceTail's arguments and results for its raw
// callback, made once per connection (no allocation per frame); used by
// the holder of the right to write only.
type spliceOut struct {
	fn          func(uintptr) bool
	fd          int
	wb          *wbuf
	block       bool
	err         error
	unsupported bool
}

func (s *spliceOut) attempt(sock uintptr) bool {
	wb := s.wb
	for wb.tailLeft > 0 {
		m, err := syscall.Splice(s.fd, nil, int(sock), nil, wb.tailLeft, spliceMove|spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			// The socket is full (the pipe holds tailLeft bytes).
			return !s.block
		case err == syscall.EINVAL, err == syscall.ENOSYS, err == syscall.EOPNOTSUPP:
			s.unsupported = true
			return true
		case err != nil:
			s.err = os.NewSyscallError("splice", err)
			return true
		case m == 0:
			s.err = errors.New("tcp: a pipe tail ended early")
			return true
		}
		wb.tailLeft -= int(m)
	}
	return true
}

// readFull reads len(b) bytes from the pipe fd, which holds them.
func readFull(fd int, b []byte) error {
	for k := 0; k < len(b); {
		m, err := syscall.Read(fd, b[k:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("tcp: reading a pipe tail: %w", err)
		case m == 0:
			return errors.New("tcp: reading a pipe tail: unexpected end")
		}
		k += m
	}
	return nil
}
