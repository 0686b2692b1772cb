package cli

import (
	"flag"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// hubLimits are the flags shared by commands that run hub nodes.
type hubLimits struct {
	maxConns, maxConnsPerIP, maxFwdPerConn, sendQueue, maxFrame *int
	frameTimeout, idleTimeout, fwdIdle                          *time.Duration
}

func hubFlags(fs *flag.FlagSet) *hubLimits {
	return &hubLimits{
		maxConns:      fs.Int("max-conns", 0, "maximum open connections (0 = no limit)"),
		maxConnsPerIP: fs.Int("max-conns-per-ip", 0, "maximum connections from one source IP (0 = no limit)"),
		maxFwdPerConn: fs.Int("max-forwarders-per-conn", 0, "maximum forwarders registered over one connection (0 = no limit)"),
		sendQueue:     fs.Int("send-queue", tcp.DefaultSendQueueSize, "messages queued per connection before further ones are dropped and counted"),
		maxFrame:      fs.Int("max-frame", tcp.MaxFrameSize, "largest frame body accepted or sent, in bytes (at most 65535)"),
		frameTimeout:  fs.Duration("frame-timeout", tcp.DefaultFrameTimeout, "time a started frame may take to arrive in full"),
		idleTimeout:   fs.Duration("idle-timeout", 0, "close connections that receive nothing for this long (0 = never)"),
		fwdIdle:       fs.Duration("forwarder-idle-timeout", 0, "remove forwarders that relay nothing for this long (0 = never; they always go when their connection closes)"),
	}
}

func (l *hubLimits) config() (hub.Config, error) {
	if *l.maxFrame < 16 || *l.maxFrame > tcp.MaxFrameSize {
		return hub.Config{}, usagef("--max-frame must be between 16 and %d", tcp.MaxFrameSize)
	}
	if *l.maxConns < 0 || *l.maxConnsPerIP < 0 || *l.maxFwdPerConn < 0 || *l.sendQueue < 1 {
		return hub.Config{}, usagef("limits must not be negative, and --send-queue at least 1")
	}
	return hub.Config{
		TCP: tcp.Config{
			MaxFrameSize:  *l.maxFrame,
			SendQueueSize: *l.sendQueue,
			FrameTimeout:  *l.frameTimeout,
			IdleTimeout:   *l.idleTimeout,
			MaxConns:      *l.maxConns,
			MaxConnsPerIP: *l.maxConnsPerIP,
		},
		MaxForwardersPerConn: *l.maxFwdPerConn,
		ForwarderIdleTimeout: *l.fwdIdle,
	}, nil
}
