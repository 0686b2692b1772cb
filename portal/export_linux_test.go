//go:build linux

package portal

// SplicedMessages returns the messages sent with a pipe tail so far.
func SplicedMessages() uint64 { return spliced.Load() }

// PortalPipes returns the pipes open (in the pool or in flight) and idle.
func PortalPipes() (open, idle int) {
	pipePool.mu.Lock()
	defer pipePool.mu.Unlock()
	return pipePool.open, len(pipePool.free)
}
