//go:build linux

package tcp

import (
	"net"
	"syscall"
	"unsafe"
)

// iovecs is a wbuf's scratch space for one vectored write.
type iovecs struct{ v []syscall.Iovec }

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
	var n int
	var werr error
	fn := func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			switch e {
			case 0:
				n = int(r)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
			default:
				werr = e
			}
			return true
		}
	}
	err := c.rc.Write(fn)
	clear(iov)
	if err == nil {
		err = werr
	}
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
				rd.dropCut()
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
