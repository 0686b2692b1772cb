//go:build !linux

package portal

// SplicedMessages is 0 off Linux: no pipe tails.
func SplicedMessages() uint64 { return 0 }

// PortalPipes is 0, 0 off Linux.
func PortalPipes() (open, idle int) { return 0, 0 }
