package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Scenario names a load pattern.
type Scenario string

// The scenarios.
const (
	// Echo: each client sends to the hub's echo_service and waits for the
	// replies, Inflight at a time; latency is the round trip.
	Echo Scenario = "echo"
	// Forward: each client is a sender and a receiving node with a
	// forwarder at the hub; the sender pipelines one-way messages to the
	// forwarder, Inflight at a time (counted until the receiver has them);
	// latency is one way, or the round trip with Config.Reply.
	Forward Scenario = "forward"
	// Bulk is Forward with large messages (60 KB by default): MB/s.
	Bulk Scenario = "bulk"
	// Secure is Echo through a secure channel to a listener behind a
	// forwarder, on nodes of the library (node + tcp + securechannel).
	Secure Scenario = "secure"
	// Idle holds Config.Conns connections open, each with a registered
	// forwarder, to measure the hub's memory per connection.
	Idle Scenario = "idle"
)

// Scenarios lists every scenario, in the order they are documented.
var Scenarios = []Scenario{Echo, Forward, Bulk, Secure, Idle}

// ParseScenario returns the scenario called s.
func ParseScenario(s string) (Scenario, error) {
	if slices.Contains(Scenarios, Scenario(s)) {
		return Scenario(s), nil
	}
	names := make([]string, len(Scenarios))
	for i, sc := range Scenarios {
		names[i] = string(sc)
	}
	return "", fmt.Errorf("unknown scenario %q; want one of %s", s, strings.Join(names, ", "))
}

// Target is what a run sends its traffic through.
type Target string

// The targets.
const (
	// TargetHub is an Ockam hub at Config.Hub.
	TargetHub Target = "hub"
	// TargetRelay is the baseline of one plain TCP relay hop (io.Copy both ways,
	// one upstream connection per downstream connection), started by the
	// run: for Echo (and Secure) in front of a plain TCP echo server that
	// writes back every frame; for Forward and Bulk pairing each sender's
	// connection with its receiver's.
	TargetRelay Target = "relay"
	// TargetDirect is the baseline of no hop: clients talk straight to the plain
	// echo server (Echo, Secure), or each sender straight to its receiver
	// (Forward, Bulk).
	TargetDirect Target = "direct"
	// TargetPlain is the baseline of a plain Go program doing the hub's
	// work on every frame, writing from its reading goroutine: for Echo (and
	// Secure) a FrameEchoServer (decode, swap routes, encode, write back);
	// for Forward and Bulk a frame relay between each sender and its
	// receiver (NewFramePairRelay), so that a round trip (Reply) crosses two
	// plain hops.
	TargetPlain Target = "plain"
)

// Baselines lists the baseline targets, in the order they are run.
var Baselines = []Target{TargetRelay, TargetDirect, TargetPlain}

// ClientPath is the client code a run uses.
type ClientPath string

// The client paths.
const (
	// Raw is the lean client: pre-encoded frames written through a
	// bufio.Writer that is flushed only when the send loop would block,
	// and one reader goroutine per connection that finds the payload's
	// timestamp without decoding the routes. It measures the hub, not the
	// client. Every baseline uses it.
	Raw ClientPath = "raw"
	// Library is the ockamhub library: a node.Node with a tcp.Transport per
	// client, sending with Node.Send and receiving from a mailbox, as an
	// application would.
	Library ClientPath = "node"
)

// Config configures a run. Zero fields take the defaults given; Scenario
// (and Hub, for TargetHub) must be set. Run only reads a Config.
type Config struct {
	// Scenario is what to run (required).
	Scenario Scenario
	// Target is TargetHub (the default) or a baseline (Baselines).
	Target Target
	// Hub is the hub's HOST:PORT, for TargetHub.
	Hub string
	// Client is the client path; "" means Raw. Secure always uses Library
	// against the hub, and Raw against its baselines (Echo's).
	Client ClientPath
	// Clients is the number of clients (connections, or sender and
	// receiver pairs); default 1.
	Clients int
	// Inflight is the messages in flight per client; default 1.
	Inflight int
	// Size is the payload size in bytes, at least MinSize and at most
	// MaxSize(Scenario); default 100, or 60000 for Bulk.
	Size int
	// Duration is the measured time; default 10s.
	Duration time.Duration
	// Warmup runs the load before measuring; 0 means none.
	Warmup time.Duration
	// Reply makes Forward and Bulk receivers send every message back to
	// its sender through the hub (or relay), so that latency is a round
	// trip and the window is closed by the replies.
	Reply bool
	// Conns is the number of connections Idle holds; default 1000.
	Conns int
	// SourceAddrs spreads Idle's connections over this many loopback
	// source addresses (127.0.0.1, 127.0.0.2, ...) so that more than one
	// ephemeral port range's worth can reach one port; default 1.
	SourceAddrs int
	// HubProcess is the hub's process, to read its CPU time and memory;
	// nil when the hub is not a process the load generator can see.
	HubProcess *Process
	// StartServer, when set, starts the baselines' servers (ServeBaseline)
	// in child processes, so that they run, and are measured, apart from
	// the load generator as a spawned hub is; nil runs them in this
	// process.
	StartServer func(ctx context.Context, kind ServerKind) (*Child, error)
	// HubInProcess says the hub runs in this process: Idle then reads the
	// memory of this process, which includes the clients' side.
	HubInProcess bool
	// Progress, when set, is called about once a second during the run.
	Progress func(Progress)
	// Logger receives setup details; nil discards.
	Logger *slog.Logger
}

// Progress is a progress report during a run.
type Progress struct {
	Scenario Scenario
	Target   Target
	Clients  int
	Phase    string        // "warmup", "measure" or "drain"; "connect" for Idle
	Elapsed  time.Duration // since the load started
	Msgs     uint64        // messages completed so far
	Rate     float64       // messages per second over the last interval
	Errors   uint64
}

// Result is the outcome of one run. Latencies are in microseconds.
type Result struct {
	Scenario Scenario   `json:"scenario"`
	Target   Target     `json:"target"`
	Client   ClientPath `json:"client"`
	Clients  int        `json:"clients"`
	Inflight int        `json:"inflight"`
	Size     int        `json:"size"`
	// Seconds is the length of the measured window.
	Seconds float64 `json:"seconds"`
	// Msgs counts messages completed in the window: replies received
	// (Echo, Secure, Reply), or messages received (Forward, Bulk).
	Msgs       uint64  `json:"msgs"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// MBPerSec is payload megabytes (10^6 bytes) per second.
	MBPerSec float64 `json:"mb_per_sec"`
	// LatencyKind is "round_trip" or "one_way".
	LatencyKind string  `json:"latency_kind"`
	Latency     Latency `json:"latency_us"`
	// Errors counts connection failures, malformed frames and lost
	// messages (Lost is included).
	Errors uint64 `json:"errors"`
	// Lost counts messages sent that never completed.
	Lost uint64 `json:"lost"`
	// ProcessCPUPercent is this process's CPU time over the window, in
	// percent of one core: the load generator, plus the hub when it runs
	// in process, plus the baseline servers.
	ProcessCPUPercent float64 `json:"process_cpu_percent"`
	// ProcessRSSBytes is this process's resident memory at the end.
	ProcessRSSBytes uint64 `json:"process_rss_bytes"`
	// ServerCPUPercent (in percent of one core, over the window) and
	// ServerRSSBytes (at the end) are those of the process under test when
	// it is a separate process the load generator can see: the hub's
	// (Config.HubProcess), or a baseline server's (Config.StartServer).
	ServerCPUPercent *float64 `json:"server_cpu_percent,omitempty"`
	ServerRSSBytes   *uint64  `json:"server_rss_bytes,omitempty"`
	// MsgsPerServerCPUSec is MsgsPerSec per second of the server's CPU
	// time (ServerCPUPercent / 100): what one core of the hub, or of the
	// baseline server, carries. Absent without ServerCPUPercent.
	MsgsPerServerCPUSec *float64 `json:"msgs_per_server_cpu_sec,omitempty"`
	// HubDrops counts the messages the hub dropped during the run (full
	// send queues, unroutable, no connection), when the caller can read
	// its counters (an in-process hub); such messages are also in Lost.
	HubDrops *uint64 `json:"hub_drops,omitempty"`
	// Idle holds Idle's figures.
	Idle *IdleResult `json:"idle,omitempty"`
}

// withDefaults fills in zero fields.
func (c Config) withDefaults() Config {
	if c.Target == "" {
		c.Target = TargetHub
	}
	switch {
	case c.Scenario == Secure && c.Target == TargetHub:
		c.Client = Library
	case c.Scenario == Secure, c.Client == "":
		c.Client = Raw // the baselines of Secure are Echo's
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Inflight == 0 {
		c.Inflight = 1
	}
	if c.Size == 0 {
		c.Size = DefaultSize(c.Scenario)
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Conns == 0 {
		c.Conns = 1000
	}
	if c.SourceAddrs == 0 {
		c.SourceAddrs = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// DefaultSize is a scenario's default payload size.
func DefaultSize(s Scenario) int {
	if s == Bulk {
		return 60000
	}
	return 100
}

// Check reports what is wrong with c, after defaults, or nil.
func (c Config) Check() error {
	c = c.withDefaults()
	if _, err := ParseScenario(string(c.Scenario)); err != nil {
		return err
	}
	switch {
	case c.Clients < 1:
		return fmt.Errorf("clients must be at least 1, not %d", c.Clients)
	case c.Inflight < 1:
		return fmt.Errorf("inflight must be at least 1, not %d", c.Inflight)
	case c.Duration <= 0:
		return fmt.Errorf("duration must be positive, not %v", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("warmup must not be negative, not %v", c.Warmup)
	case c.Size < MinSize:
		return fmt.Errorf("size must be at least %d bytes (the timestamp), not %d", MinSize, c.Size)
	case c.Size > MaxSize(c.Scenario):
		return fmt.Errorf("size %d does not fit in a frame: at most %d bytes for %s (65535 minus the routes and headers)", c.Size, MaxSize(c.Scenario), c.Scenario)
	case c.Conns < 1:
		return fmt.Errorf("conns must be at least 1, not %d", c.Conns)
	case c.SourceAddrs < 1 || c.SourceAddrs > 254:
		return fmt.Errorf("source addresses must be between 1 and 254, not %d", c.SourceAddrs)
	}
	switch c.Target {
	case TargetHub:
		if c.Hub == "" {
			return fmt.Errorf("no hub address")
		}
	case TargetRelay, TargetDirect, TargetPlain:
		if c.Scenario == Idle {
			return fmt.Errorf("the idle scenario has no baseline")
		}
		if c.Client != Raw {
			return fmt.Errorf("baselines use the raw client only")
		}
	default:
		return fmt.Errorf("unknown target %q", c.Target)
	}
	if c.Client != Raw && c.Client != Library {
		return fmt.Errorf("unknown client path %q; want raw or node", c.Client)
	}
	if c.Client == Library && c.Scenario == Idle {
		return fmt.Errorf("the idle scenario uses the raw client only")
	}
	return nil
}

// Run runs one scenario against one target and returns its figures. It
// returns early with ctx's error when ctx ends, having closed every
// connection and server it opened.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	cfg = cfg.withDefaults()
	switch cfg.Scenario {
	case Idle:
		return runIdle(ctx, cfg)
	case Secure:
		if cfg.Target == TargetHub {
			return runLoad(ctx, cfg, secureSetup)
		}
		// The baselines of Secure are the plain echo ones.
		return runLoad(ctx, cfg, rawSetup)
	}
	if cfg.Client == Library {
		return runLoad(ctx, cfg, librarySetup)
	}
	return runLoad(ctx, cfg, rawSetup)
}
