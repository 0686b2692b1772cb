//go:build linux

package portal

import "syscall"

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
