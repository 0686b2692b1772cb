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

// readRaw is never called off Linux (directConn returns nil).
func readRaw(syscall.RawConn, []byte, func()) (int, error) { return 0, errNoRaw }

var errNoRaw = errors.New("portal: no raw reads on this platform")
