//go:build !linux

package portal

import "syscall"

// tryRead would read without waiting; elsewhere than on Linux the inlet
// carries no early data (directConn returns nil there anyway).
func tryRead(rc syscall.RawConn, p []byte) int { return 0 }
