// Package gctune keeps the garbage collector of a relay process from
// running far more often than its memory needs.
//
// With the default GOGC=100 the collector runs each time the heap has
// grown by as much as the live heap. A hub's live heap is small while its
// allocation rate is high (every frame is decoded into new routes and
// bodies), so under load it collected hundreds of times a second: with
// GOGC=400 alone the same hub forwarded 1.4–1.8× more messages per CPU
// second (docs/benchmarks.md). Start lets the heap grow by at least a fixed
// headroom between collections: GOGC is raised while the live heap is
// smaller than the headroom, and is the default (100) once it is larger, so
// memory grows by at most the headroom over what the default would use.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// maxPercent bounds the GOGC the tuner sets.
const maxPercent = 5000

// minHeap is the runtime's minimum heap goal at GOGC=100 (4 MiB); the
// runtime scales it with GOGC, so the tuner counts a live heap as at least
// this much.
const minHeap = 4 << 20

// Tuner adjusts GOGC after every collection; see Start.
type Tuner struct {
	headroom uint64
	stopped  atomic.Bool
	last     atomic.Int64 // the GOGC set last
	samples  []metrics.Sample
}

type sentinel struct{ _ [32]byte }

// Start makes the collector let the heap grow by at least headroom bytes
// over the live heap between collections, and returns the tuner (Stop ends
// it and restores GOGC=100). It does nothing, and returns nil, when
// headroom is 0 or the GOGC environment variable is set: an explicit
// setting wins.
func Start(headroom uint64) *Tuner {
	if headroom == 0 || os.Getenv("GOGC") != "" {
		return nil
	}
	t := &Tuner{headroom: headroom, samples: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.last.Store(100)
	t.tune()
	return t
}

// Percent returns the GOGC the tuner set last.
func (t *Tuner) Percent() int { return int(t.last.Load()) }

// Stop stops tuning and restores GOGC=100. It is safe on a nil Tuner.
func (t *Tuner) Stop() {
	if t == nil || t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(100)
}

// percent returns the GOGC for a live heap of live bytes: the one that
// makes the heap goal the live heap plus the headroom (at least GOGC=100).
// Before the first collection (live 0) it is the default.
func (t *Tuner) percent(live uint64) int {
	if live == 0 {
		return 100
	}
	return int(min(max(t.headroom*100/max(live, minHeap), 100), maxPercent))
}

// tune sets GOGC for the live heap measured by the last collection and
// arms itself to run again after the next one.
func (t *Tuner) tune() {
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	var live uint64
	if t.samples[0].Value.Kind() == metrics.KindUint64 {
		live = t.samples[0].Value.Uint64()
	}
	p := t.percent(live)
	// Setting GOGC costs a little: only on a change of more than 10 %.
	if last := int(t.last.Load()); p*10 > last*11 || p*11 < last*10 {
		debug.SetGCPercent(p)
		t.last.Store(int64(p))
	}
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) { t.tune() })
}
