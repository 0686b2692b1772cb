//go:build !linux

package portal

// pipeTail is unused off Linux: no splice(2).
type pipeTail struct{}

// spliceIn is unused off Linux.
type spliceIn struct{}

// takePipe: off Linux, reads always take the usual path.
func (c *pconn) takePipe(bool) *pipeTail { return nil }

func (c *pconn) spliceSend(*pipeTail, int, func()) (error, error) { return nil, nil }
