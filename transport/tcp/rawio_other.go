//go:build !linux

package tcp

import (
	"errors"
	"net"
	"syscall"
)

// iovecs is unused off Linux.
type iovecs struct{}

// rawConnOf returns nil off Linux: every connection uses the portable
// paths (a writer goroutine, a read buffer of its own).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *conn) tryWrite(*wbuf) (int, error) { return 0, errors.New("tcp: no direct writes") }

func (rd *reader) rawRead(uintptr) bool { return true }

// canSplice: no splice(2) off Linux; no PipeTail is ever queued.
const canSplice = false

// spliceOut is unused off Linux.
type spliceOut struct{}

func (c *conn) spliceTail(*wbuf, bool) error { return errors.New("tcp: no pipe tails") }

func readFull(int, []byte) error { return errors.New("tcp: no pipe tails") }
