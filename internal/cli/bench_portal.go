package cli

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/ockamhub/ockamhub/loadgen"
)

// runBenchPortal is `ockamhub bench portal`: TCP portals against a plain Go
// TCP relay hop (loadgen.RunPortal).
func runBenchPortal(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("bench portal", "[flags]", `Measures TCP portals inlet -> hub -> outlet, all in this process on
127.0.0.1, plain and inside a secure channel, against a plain Go TCP relay
hop (io.Copy both ways) in the same run: download MB/s of each stream count
(the paths take turns in --rounds rounds, so that the machine's load falls
on each alike), each path's ratio to the relay, and the time to first byte of a new
connection (dial, one byte out, one byte back) with how many of the path's
own round trips it costs more than a direct connection, measured twice:
back to back (as in sessions 2-4) and quiet (paths interleaved sample by
sample, no sample overlapping another connection's close). See
docs/benchmarks.md, "Portals".`)
	streams := fs.String("streams", "1,16", "comma-separated numbers of concurrent streams")
	bytes := fs.Int64("bytes", 256<<20, "bytes downloaded per configuration, split between its streams")
	samples := fs.Int("samples", 200, "connections timed for the time to first byte")
	rounds := fs.Int("rounds", 4, "times the paths take turns downloading a share of --bytes (each round in another order)")
	jsonOut := fs.Bool("json", false, "print JSON instead of tables")
	chart := fs.String("chart", "", "also write an SVG chart of the results to this file")
	gcHeadroom := gcHeadroomFlag(fs)
	setupLog := e.logFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var counts []int
	for _, s := range strings.Split(*streams, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return usagef("bad --streams %q: want positive numbers separated by commas", *streams)
		}
		counts = append(counts, n)
	}
	if *bytes < int64(len(counts)) || *samples < 1 || *rounds < 1 {
		return usagef("--bytes, --samples and --rounds must be positive")
	}
	if *gcHeadroom < 0 {
		return usagef("--gc-headroom must not be negative")
	}
	setupLog()
	// As `portal inlet|outlet` run (all of them share this process here).
	defer startGCHeadroom(*gcHeadroom)()
	rep, err := loadgen.RunPortal(ctx, loadgen.PortalConfig{Streams: counts, Bytes: *bytes, Samples: *samples, Rounds: *rounds})
	if err != nil {
		return err
	}
	if *chart != "" {
		f, err := os.Create(*chart)
		if err != nil {
			return err
		}
		err = rep.WriteChart(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(e.stdout)
}
