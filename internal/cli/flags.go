package cli

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/internal/gctune"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// hubLimits are the flags shared by commands that run hub nodes.
type hubLimits struct {
	maxConns, maxConnsPerIP, maxFwdPerConn, sendQueue, maxFrame *int
	sendQueueBytes                                              *int
	frameTimeout, idleTimeout, fwdIdle, queueWait               *time.Duration
	static, noCutThrough                                        *bool
	msgRate                                                     *float64
	token, tokensFile                                           *string
	gcHeadroom                                                  *int
}

// hubFlags defines the hub limit flags on fs. With perNodeForwarding (serve),
// the operator-wide named forwarding flags (--static-forwarding,
// --forwarder-token, --forwarder-tokens) are left out: each node's owner
// sets named forwarding and its tokens for that node alone.
func hubFlags(fs *flag.FlagSet, perNodeForwarding bool) *hubLimits {
	l := &hubLimits{
		maxConns:       fs.Int("max-conns", 0, "maximum open connections (0 = no limit)"),
		maxConnsPerIP:  fs.Int("max-conns-per-ip", 0, "maximum connections from one source IP, or IPv6 /64 (0 = no limit)"),
		maxFwdPerConn:  fs.Int("max-forwarders-per-conn", hub.DefaultMaxForwardersPerConn, "maximum forwarders (random and named) one connection may hold (0 = no limit)"),
		sendQueue:      fs.Int("send-queue", tcp.DefaultSendQueueSize, "messages queued per connection; when full, senders wait up to --queue-full-wait, then messages are dropped and counted"),
		sendQueueBytes: fs.Int("send-queue-bytes", tcp.DefaultSendQueueBytes, "bytes queued per connection (a peer that stops reading holds at most this much memory)"),
		maxFrame:       fs.Int("max-frame", tcp.MaxFrameSize, "largest frame body accepted or sent, in bytes (at most 65535)"),
		queueWait:      fs.Duration("queue-full-wait", hub.DefaultQueueFullWait, "how long a message waits for room in a full send queue (slowing its sender) before it is dropped and counted"),
		frameTimeout:   fs.Duration("frame-timeout", tcp.DefaultFrameTimeout, "time a started frame may take to arrive in full"),
		idleTimeout:    fs.Duration("idle-timeout", 0, "close connections that neither send nor receive for this long (0 = never; 2021 peers send no heartbeats)"),
		msgRate:        fs.Float64("max-msg-rate", 0, "messages per second read from one connection (token bucket, burst = one second's worth); a faster peer is slowed down, not cut off (0 = no limit)"),
		fwdIdle:        fs.Duration("forwarder-idle-timeout", 0, "remove forwarders that relay nothing for this long (0 = never; they always go when their connection closes)"),
		noCutThrough:   fs.Bool("no-cut-through", false, "relay frames through forwarders the usual way: large ones copied (read, then write) instead of their payload spliced from socket to socket (Linux), small ones decoded, handed to the forwarder and encoded again instead of relayed by their bytes"),
		gcHeadroom:     fs.Int("gc-headroom", defaultGCHeadroomMiB, "MiB the heap may grow by between garbage collections at least (fewer collections under load for at most this much memory; 0 = the Go default, GOGC=100; ignored when GOGC is set)"),
	}
	if perNodeForwarding {
		l.static, l.token, l.tokensFile = new(bool), new(string), new(string)
	} else {
		l.static = fs.Bool("static-forwarding", false, "enable static_forwarding_service: named forwarders at forward_to_NAME, moved by re-registering")
		l.token = fs.String("forwarder-token", "", "token required to claim a forwarder name (with --static-forwarding)")
		l.tokensFile = fs.String("forwarder-tokens", "", "file of \"NAME TOKEN\" lines: per-name tokens (with --static-forwarding)")
	}
	return l
}

// defaultGCHeadroomMiB is --gc-headroom's default.
const defaultGCHeadroomMiB = 32

// startGC starts the garbage collector tuning --gc-headroom asks for; the
// returned function stops it.
func (l *hubLimits) startGC() func() { return startGCHeadroom(*l.gcHeadroom) }

// gcHeadroomFlag defines --gc-headroom for the commands that relay streams
// without a hub's other limits (portal inlet|outlet, bench portal): each
// portal chunk is a new 64 KiB buffer, and with the Go default the
// collector ran hundreds of times a second (docs/benchmarks.md, "Portals").
func gcHeadroomFlag(fs *flag.FlagSet) *int {
	return fs.Int("gc-headroom", defaultGCHeadroomMiB, "MiB the heap may grow by between garbage collections at least (fewer collections under load for at most this much memory; 0 = the Go default, GOGC=100; ignored when GOGC is set)")
}

// startGCHeadroom starts the garbage collector tuning a --gc-headroom of
// mib asks for; the returned function stops it.
func startGCHeadroom(mib int) func() {
	if mib <= 0 {
		return func() {}
	}
	return gctune.Start(uint64(mib) << 20).Stop
}

func (l *hubLimits) config() (hub.Config, error) {
	if *l.maxFrame < 16 || *l.maxFrame > tcp.MaxFrameSize {
		return hub.Config{}, usagef("--max-frame must be between 16 and %d", tcp.MaxFrameSize)
	}
	if *l.sendQueueBytes < tcp.MaxFrameSize+tcp.FrameHeaderSize {
		return hub.Config{}, usagef("--send-queue-bytes must be at least one frame (%d)", tcp.MaxFrameSize+tcp.FrameHeaderSize)
	}
	if *l.queueWait <= 0 {
		return hub.Config{}, usagef("--queue-full-wait must be positive")
	}
	if *l.msgRate < 0 || *l.maxConns < 0 || *l.maxConnsPerIP < 0 || *l.maxFwdPerConn < 0 || *l.sendQueue < 1 {
		return hub.Config{}, usagef("limits must not be negative, and --send-queue at least 1")
	}
	var tokens map[string]string
	if *l.tokensFile != "" {
		var err error
		if tokens, err = readTokens(*l.tokensFile); err != nil {
			return hub.Config{}, err
		}
	}
	if (*l.token != "" || tokens != nil) && !*l.static {
		return hub.Config{}, usagef("--forwarder-token and --forwarder-tokens need --static-forwarding")
	}
	return hub.Config{
		StaticForwarding: *l.static,
		ForwarderToken:   *l.token,
		ForwarderTokens:  tokens,
		TCP: tcp.Config{
			MaxFrameSize:   *l.maxFrame,
			SendQueueSize:  *l.sendQueue,
			SendQueueBytes: *l.sendQueueBytes,
			FrameTimeout:   *l.frameTimeout,
			IdleTimeout:    *l.idleTimeout,
			MaxConns:       *l.maxConns,
			MaxConnsPerIP:  *l.maxConnsPerIP,
			MessageRate:    *l.msgRate,
			QueueFullWait:  *l.queueWait,
			MessageBurst:   int(*l.msgRate),
		},
		MaxForwardersPerConn: cmp.Or(*l.maxFwdPerConn, -1), // 0 on the command line: no limit
		ForwarderIdleTimeout: *l.fwdIdle,
		NoCutThrough:         *l.noCutThrough,
	}, nil
}

// readTokens reads "NAME TOKEN" lines; blank lines and # comments are skipped.
func readTokens(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --forwarder-tokens: %w", err)
	}
	tokens := make(map[string]string)
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"NAME TOKEN\"", path, i+1)
		}
		tokens[f[0]] = f[1]
	}
	return tokens, nil
}
