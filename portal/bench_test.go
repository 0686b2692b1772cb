package portal_test

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/internal/gctune"
	"github.com/ockamhub/ockamhub/portal"
)

// zeroTarget serves downloads: 8 bytes of size, then that many zero bytes;
// a single byte other than 's' is echoed (time to first byte).
func zeroTarget(t testing.TB) string {
	return serveTCP(t, func(c net.Conn) {
		var op [1]byte
		var buf []byte
		for {
			if _, err := io.ReadFull(c, op[:]); err != nil {
				return
			}
			if op[0] != 's' {
				if _, err := c.Write(op[:]); err != nil {
					return
				}
				continue
			}
			if buf == nil {
				buf = make([]byte, 256<<10)
			}
			var sz [8]byte
			if _, err := io.ReadFull(c, sz[:]); err != nil {
				return
			}
			for n := int64(binary.BigEndian.Uint64(sz[:])); n > 0; {
				k := min(n, int64(len(buf)))
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
				n -= k
			}
		}
	})
}

// benchDownload downloads b.N × 8 MiB through one portal connection
// (inlet → hub → outlet → target and back), reporting MB/s.
func benchDownload(b *testing.B, secure bool, opts portal.Options, gcHeadroom uint64) {
	if gcHeadroom > 0 {
		// As `ockamhub portal inlet|outlet` and `bench portal` run
		// (--gc-headroom); a no-op when GOGC is set.
		defer gctune.Start(gcHeadroom).Stop()
	}
	addrHub, _ := startHub(b, hub.Config{}, nil)
	target := zeroTarget(b)
	pair := plainPair
	if secure {
		pair = securePair
	}
	addr, _, _ := pair(b, addrHub, target, portal.OutletConfig{Options: opts}, portal.InletConfig{Options: opts})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const chunk = 8 << 20
	buf := make([]byte, 256<<10)
	b.SetBytes(chunk)
	b.ResetTimer()
	for b.Loop() {
		var req [9]byte
		req[0] = 's'
		binary.BigEndian.PutUint64(req[1:], chunk)
		if _, err := c.Write(req[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(c, chunk), buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDownload is one portal stream's download speed, plain and
// inside a secure channel (docs/benchmarks.md, "Portals"; `ockamhub bench
// portal` compares it with a plain relay hop).
// The settings before commit p14 (48 KiB chunks, 512 KiB window) are
// measured beside the defaults, and the defaults with the collector's
// headroom the commands set (--gc-headroom 32).
func BenchmarkDownload(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts portal.Options
		gc   uint64
	}{
		{"default", portal.Options{}, 0},
		{"default-gc32M", portal.Options{}, 32 << 20},
		{"chunk48K-window512K", portal.Options{Chunk: 48 << 10, Window: 512 << 10}, 0},
		{"chunk60K-window512K", portal.Options{Chunk: 60 << 10, Window: 512 << 10}, 0},
		{"chunk60K-window1M", portal.Options{Chunk: 60 << 10, Window: 1 << 20}, 0},
		{"chunk60K-window2M", portal.Options{Chunk: 60 << 10, Window: 2 << 20}, 0},
		{"chunk60K-window4M", portal.Options{Chunk: 60 << 10, Window: 4 << 20}, 0},
	} {
		b.Run("plain/"+bc.name, func(b *testing.B) { benchDownload(b, false, bc.opts, bc.gc) })
		b.Run("secure/"+bc.name, func(b *testing.B) { benchDownload(b, true, bc.opts, bc.gc) })
	}
}

// BenchmarkFirstByte is a new portal connection's time to its first byte:
// dial the inlet, send one byte, read the target's echo; with early data
// (the byte goes with the Ping when it is there at accept) and without,
// and with early data inside a secure channel.
func BenchmarkFirstByte(b *testing.B) {
	for _, noEarly := range []bool{false, true} {
		name := "early"
		if noEarly {
			name = "noearly"
		}
		b.Run(name, func(b *testing.B) { benchFirstByte(b, false, portal.Options{NoEarlyData: noEarly}) })
	}
	b.Run("secure", func(b *testing.B) { benchFirstByte(b, true, portal.Options{}) })
}

func benchFirstByte(b *testing.B, secure bool, opts portal.Options) {
	addrHub, _ := startHub(b, hub.Config{}, nil)
	pair := plainPair
	if secure {
		pair = securePair
	}
	addr, in, _ := pair(b, addrHub, zeroTarget(b), portal.OutletConfig{}, portal.InletConfig{Options: opts})
	var one [1]byte
	times := make([]time.Duration, 0, 1024)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		c.Close()
	}
	b.StopTimer()
	// The mean is at the mercy of a few slow opens on a loaded machine;
	// the median is what `ockamhub bench portal` reports.
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
	// How often the client's byte was there to go with the Ping.
	b.ReportMetric(float64(in.Stats().Early)/float64(b.N), "early/op")
}
