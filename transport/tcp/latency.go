package tcp

import (
	"sync/atomic"
	"time"
)

// latencySampleEvery: one message in this many is timed from the moment it
// is handed to a connection until it has been written to the socket.
const latencySampleEvery = 16

// LatencyBuckets are the upper bounds of the relay latency histogram.
var LatencyBuckets = []time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond,
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// Histogram is a snapshot of a latency histogram: Counts[i] messages took at
// most LatencyBuckets[i] (not cumulative); the last count is for longer ones.
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
}

type histogram struct {
	counts [17]atomic.Uint64 // len(LatencyBuckets)+1
	sum    atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sum.Load())}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	return out
}
