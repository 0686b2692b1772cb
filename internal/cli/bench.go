package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/loadgen"
)

const benchAbout = `Runs a load generator against a hub and prints what it measured: messages
per second, MB/s, latency percentiles (p50, p90, p99, p99.9), errors, and
the hub's CPU and memory when it can see the hub's process.

Scenarios:
  echo     clients send to echo_service and wait for the replies (round trip)
  forward  senders -> hub -> a forwarder -> a receiving node, pipelined one
           way (with --reply the receiver sends each message back: round trip)
  bulk     forward with large messages (default 60000 bytes): MB/s
  secure   echo through a secure channel to a listener behind a forwarder
  idle     --conns connections, each with a forwarder, held open: the hub's
           resident memory per connection
  portal   TCP portals against a relay hop (own flags: bench portal --help)

By default the hub runs in this process on 127.0.0.1:0; --spawn runs it as
a child 'ockamhub node' process (so that its CPU and memory are measured
apart from the load generator's); --hub HOST:PORT uses a running one.

--baseline runs the same traffic (the same frames, byte for byte in length)
through a plain Go TCP relay hop (io.Copy both ways: "relay"), against a
plain TCP echo server (or, for forward and bulk, sender to receiver)
directly ("direct"), and through a plain Go program that does the hub's
work on every frame and writes from its reading goroutine ("plain": a
frame-echo server that decodes, swaps the routes, encodes and writes back;
for forward and bulk a frame relay, so that a --reply round trip crosses two
plain hops), and prints each figure's ratio hub/baseline. With --spawn the baseline servers
run in child processes too, and their CPU and memory are reported. --chart writes an SVG of throughput
and latency against the number of clients (--sweep).

The raw client (the default, and always for the baselines) writes
pre-encoded frames through a bufio.Writer flushed when the window is full,
with one reader goroutine per connection, so that the hub is measured and not
the client; --client node uses the library (node + tcp) as a program would.
secure always uses the library. See docs/benchmarks.md.

Examples:
  ockamhub bench echo --clients 1 --inflight 1 --baseline
  ockamhub bench forward --clients 4 --inflight 256 --baseline --spawn
  ockamhub bench idle --conns 10000 --spawn --duration 5s`

// benchDefaultSweep is the client counts of --chart without --sweep.
var benchDefaultSweep = []int{1, 2, 4, 8, 16, 32}

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "portal" {
		return runBenchPortal(ctx, e, args[1:])
	}
	fs := e.flagSet("bench", "SCENARIO [flags]", benchAbout)
	clients := fs.Int("clients", 4, "clients: connections (echo, secure) or sender and receiver pairs (forward, bulk)")
	inflight := fs.Int("inflight", 16, "messages in flight per client")
	size := fs.Int("size", 0, "payload bytes, at least 8 (a timestamp); 0 means 100, or 60000 for bulk")
	duration := fs.Duration("duration", 10*time.Second, "measured time (for idle: how long the connections are held)")
	warmup := fs.Duration("warmup", time.Second, "load before measuring")
	conns := fs.Int("conns", 1000, "idle: connections to hold")
	srcAddrs := fs.Int("source-addrs", 0, "idle: spread connections over this many loopback source addresses 127.0.0.1..N (0 = as many as the ephemeral port range needs)")
	clientPath := fs.String("client", "raw", "client code: raw (lean, pre-encoded frames), node (the library: node + tcp), or both (echo, forward, bulk)")
	reply := fs.Bool("reply", false, "forward, bulk: the receiver sends every message back, so latency is a round trip")
	baseline := fs.Bool("baseline", false, "also run the same traffic through a plain Go TCP relay hop, directly, and through a plain Go frame server (plain), and print ratios")
	jsonOut := fs.Bool("json", false, "print one JSON object with every figure instead of tables")
	chart := fs.String("chart", "", "write an SVG chart of throughput and latency against clients to this file (runs --sweep)")
	sweep := fs.String("sweep", "", "comma-separated client counts to run, e.g. 1,2,4,8,16,32 (default with --chart)")
	spawn := fs.Bool("spawn", false, "run the hub as a child 'ockamhub node' process, measured apart")
	hubBin := fs.String("hub-bin", "", "with --spawn: the ockamhub binary to run (default this one)")
	hubAddr := fs.String("hub", "", "use the running hub at HOST:PORT instead of starting one")
	hubPID := fs.Int("hub-pid", 0, "with --hub: the hub's process id on this machine, to read its CPU and memory")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the hub too when in process) to this file")
	serveBaseline := fs.String("serve-baseline", "", "internal, for --spawn --baseline: serve the baseline server echo, relay-echo, pair, frame-echo or frame-pair on 127.0.0.1:0 until stopped")
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *serveBaseline != "" {
		if len(pos) > 0 {
			return usagef("--serve-baseline takes no SCENARIO")
		}
		return serveBenchBaseline(ctx, e, loadgen.ServerKind(*serveBaseline))
	}
	if len(pos) != 1 {
		return usagef("want one SCENARIO (echo, forward, bulk, secure, idle or portal), got %d arguments", len(pos))
	}
	sc, err := loadgen.ParseScenario(pos[0])
	if err != nil {
		return usagef("%v", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var counts []int
	switch {
	case *sweep != "":
		if set["clients"] {
			return usagef("--clients and --sweep exclude each other")
		}
		if counts, err = parseSweep(*sweep); err != nil {
			return err
		}
	case *chart != "":
		counts = benchDefaultSweep
	default:
		counts = []int{*clients}
	}
	var paths []loadgen.ClientPath
	switch *clientPath {
	case "raw":
		paths = []loadgen.ClientPath{loadgen.Raw}
	case "node":
		paths = []loadgen.ClientPath{loadgen.Library}
	case "both":
		paths = []loadgen.ClientPath{loadgen.Raw, loadgen.Library}
	default:
		return usagef("--client must be raw, node or both, not %q", *clientPath)
	}
	switch {
	case *spawn && *hubAddr != "":
		return usagef("--spawn and --hub exclude each other")
	case *hubPID != 0 && *hubAddr == "":
		return usagef("--hub-pid needs --hub")
	case *hubPID < 0:
		return usagef("--hub-pid must be positive")
	case *hubBin != "" && !*spawn:
		return usagef("--hub-bin needs --spawn")
	case *reply && sc != loadgen.Forward && sc != loadgen.Bulk:
		return usagef("--reply is for forward and bulk")
	case *baseline && sc == loadgen.Idle:
		return usagef("the idle scenario has no baseline")
	case *chart != "" && sc == loadgen.Idle:
		return usagef("the idle scenario has no chart")
	case len(paths) > 1 && (sc == loadgen.Idle || sc == loadgen.Secure):
		return usagef("--client both is for echo, forward and bulk")
	case paths[0] == loadgen.Library && sc == loadgen.Idle:
		return usagef("the idle scenario uses the raw client only")
	case set["conns"] && sc != loadgen.Idle, set["source-addrs"] && sc != loadgen.Idle:
		return usagef("--conns and --source-addrs are for the idle scenario")
	}
	if *hubAddr != "" {
		if _, _, err := net.SplitHostPort(*hubAddr); err != nil {
			return usagef("bad --hub %q: want HOST:PORT", *hubAddr)
		}
	}
	// loadgen takes zero for its defaults; on the command line zero is
	// nonsense.
	switch {
	case *clients < 1:
		return usagef("--clients must be at least 1, not %d", *clients)
	case *inflight < 1:
		return usagef("--inflight must be at least 1, not %d", *inflight)
	case *duration <= 0:
		return usagef("--duration must be positive, not %v", *duration)
	case *conns < 1:
		return usagef("--conns must be at least 1, not %d", *conns)
	case *size < 0:
		return usagef("--size must not be negative (0 means the scenario's default)")
	}
	base := loadgen.Config{
		Scenario: sc, Hub: "127.0.0.1:1", Inflight: *inflight, Size: *size,
		Duration: *duration, Warmup: *warmup, Reply: *reply, Conns: *conns, SourceAddrs: *srcAddrs,
	}
	for _, n := range counts {
		c := base
		c.Clients = n
		if err := c.Check(); err != nil {
			return usagef("%v", benchFlagNames(err))
		}
	}
	if *srcAddrs < 0 {
		return usagef("--source-addrs must not be negative")
	}
	setupLog()

	fl, err := loadgen.RaiseFileLimit()
	if err != nil {
		e.log.Warn("could not raise the open file limit", "err", err)
	} else {
		e.log.Info("open file limit", "soft_before", fl.SoftBefore, "soft", fl.Soft, "hard", fl.Hard)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	self, err := os.Executable()
	if err != nil && *spawn && *baseline {
		return fmt.Errorf("--spawn --baseline: finding this program: %w", err)
	}
	bh, err := startBenchHub(ctx, e, *spawn, *hubBin, *hubAddr, *hubPID)
	if err != nil {
		return err
	}
	defer bh.close()

	rep := &loadgen.Report{Scenario: sc, Hub: bh.kind, Machine: loadgen.ThisMachine(), FileLimit: fl}
	progress := benchProgress(e)
	for _, n := range counts {
		for _, p := range paths {
			c := base
			c.Clients, c.Client, c.Hub = n, p, bh.addr
			c.HubProcess, c.HubInProcess = bh.proc, bh.h != nil
			c.Progress, c.Logger = progress, e.log
			before := bh.drops()
			r, err := loadgen.Run(ctx, c)
			benchProgressDone(e)
			if err != nil {
				return benchErr(ctx, err)
			}
			if after := bh.drops(); after != nil {
				d := *after - *before
				r.HubDrops = &d
			}
			if bh.exited() {
				return errors.New("the spawned hub exited during the run")
			}
			rep.Runs = append(rep.Runs, r)
		}
		if !*baseline {
			continue
		}
		for _, t := range loadgen.Baselines {
			c := base
			c.Clients, c.Client, c.Target = n, loadgen.Raw, t
			c.Progress, c.Logger = progress, e.log
			if *spawn {
				c.StartServer = func(ctx context.Context, kind loadgen.ServerKind) (*loadgen.Child, error) {
					// This program serves the baselines, whatever --hub-bin
					// runs the hub (an older build may lack a baseline).
					return loadgen.StartChild(ctx, e.stderr, self, "bench", "--serve-baseline", string(kind), "--log-level", "error")
				}
			}
			r, err := loadgen.Run(ctx, c)
			benchProgressDone(e)
			if err != nil {
				return benchErr(ctx, err)
			}
			rep.Runs = append(rep.Runs, r)
		}
	}
	rep.ComputeRatios()

	if *chart != "" {
		f, err := os.Create(*chart)
		if err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
		if err := rep.WriteChart(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(e.stdout)
}

// serveBenchBaseline is --serve-baseline: what a child started by --spawn
// --baseline runs.
func serveBenchBaseline(ctx context.Context, e *env, kind loadgen.ServerKind) error {
	switch kind {
	case loadgen.ServerEcho, loadgen.ServerRelayEcho, loadgen.ServerPair, loadgen.ServerFrameEcho, loadgen.ServerFramePair:
	default:
		return usagef("--serve-baseline must be echo, relay-echo, pair, frame-echo or frame-pair, not %q", kind)
	}
	loadgen.RaiseFileLimit()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", ln.Addr())
	return loadgen.ServeBaseline(ctx, kind, ln)
}

// parseSweep parses --sweep.
func parseSweep(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, usagef("bad --sweep %q: want positive client counts separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchFlagNames rewrites loadgen's configuration errors in terms of flags.
func benchFlagNames(err error) string {
	msg := strings.TrimPrefix(err.Error(), "loadgen: ")
	for _, f := range []string{"clients", "inflight", "duration", "warmup", "size", "conns"} {
		if strings.HasPrefix(msg, f+" ") {
			return "--" + msg
		}
	}
	if strings.HasPrefix(msg, "source addresses") {
		return "--source-addrs" + strings.TrimPrefix(msg, "source addresses")
	}
	return msg
}

func benchErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}

// benchHub is the hub under test.
type benchHub struct {
	kind  string // "in-process", "spawned" or "external"
	addr  string
	proc  *loadgen.Process // nil when not visible
	h     *hub.Hub         // in process
	child *loadgen.Child   // spawned
	bin   string           // the spawned ockamhub
	close func()
}

func startBenchHub(ctx context.Context, e *env, spawn bool, bin, addr string, pid int) (*benchHub, error) {
	switch {
	case addr != "":
		bh := &benchHub{kind: "external", addr: addr, close: func() {}}
		if pid != 0 {
			bh.proc = loadgen.PID(pid)
			if _, err := bh.proc.RSS(); err != nil {
				return nil, fmt.Errorf("--hub-pid %d: %w", pid, err)
			}
		}
		return bh, nil
	case spawn:
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("--spawn: finding this program: %w", err)
			}
			bin = exe
		}
		c, err := loadgen.StartChild(ctx, e.stderr, bin, "node", "--listen", "127.0.0.1:0", "--log-level", "error")
		if err != nil {
			return nil, err
		}
		e.log.Info("spawned hub", "pid", c.Process.PID(), "addr", c.Addr)
		return &benchHub{kind: "spawned", addr: c.Addr, proc: c.Process, child: c, bin: bin, close: func() { c.Close() }}, nil
	}
	h, err := hub.New(hub.Config{Logger: e.log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- h.Serve(ln) }()
	return &benchHub{kind: "in-process", addr: ln.Addr().String(), h: h, close: func() {
		h.Close()
		<-served
	}}, nil
}

// drops returns the in-process hub's dropped-message counters, or nil.
func (bh *benchHub) drops() *uint64 {
	if bh.h == nil {
		return nil
	}
	s := bh.h.Stats().TCP
	n := s.QueueFull + s.Unroutable + s.NoConnection
	return &n
}

func (bh *benchHub) exited() bool { return bh.child != nil && bh.child.Exited() }

// benchProgress returns the progress reporter: a line on stderr rewritten
// every second when stderr is a terminal, log lines otherwise.
func benchProgress(e *env) func(loadgen.Progress) {
	f, ok := e.stderr.(*os.File)
	if ok && isTerminal(f) {
		return func(p loadgen.Progress) {
			fmt.Fprintf(e.stderr, "\r\033[K%s %s, %d clients: %s %5.1fs  %s msgs  %s msgs/s  %d errors",
				p.Scenario, p.Target, p.Clients, p.Phase, p.Elapsed.Seconds(), benchCount(float64(p.Msgs)), benchCount(p.Rate), p.Errors)
		}
	}
	return func(p loadgen.Progress) {
		e.log.Info("bench progress", "scenario", string(p.Scenario), "target", string(p.Target), "clients", p.Clients,
			"phase", p.Phase, "elapsed", p.Elapsed.Round(time.Millisecond).String(), "msgs", p.Msgs,
			"msgs_per_sec", int64(p.Rate), "errors", p.Errors)
	}
}

// benchProgressDone ends the terminal progress line.
func benchProgressDone(e *env) {
	if f, ok := e.stderr.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(e.stderr, "\r\033[K")
	}
}

func benchCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
