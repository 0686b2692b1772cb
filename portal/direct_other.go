//go:build !linux

package portal

import (
	"errors"
	"net"
	"syscall"
)

// directConn returns nil off Linux: the writer goroutine writes every
// byte.
func directConn(net.Conn) syscall.RawConn { return nil }

func tryWrite(syscall.RawConn, []byte) int { return 0 }

// tryRead would read without waiting; elsewhere than on Linux the inlet
// carries no early data (directConn returns nil there anyway).
func tryRead(syscall.RawConn, []byte) int { return 0 }

// rawReader is never used off Linux (directConn returns nil).
type rawReader struct{}

func newRawReader(syscall.RawConn) *rawReader { return nil }

func (*rawReader) read([]byte, func()) (int, error) { return 0, errNoRaw }

var errNoRaw = errors.New("portal: no raw reads on this platform")
