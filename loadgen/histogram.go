package loadgen

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits buckets, so a recorded value is reported to within 1/2^(subBits-1)
// of itself (0.8%), whatever its magnitude.
const subBits = 8

const (
	subCount = 1 << subBits // exact buckets below this value
	halfSub  = subCount / 2
	nBuckets = (64-subBits)*halfSub + subCount
)

// Histogram records durations in log-linear buckets (HDR style): values
// below 256 ns exactly, larger ones to within 0.8%. It costs one fixed
// array, so a reader goroutine can record millions of samples without
// allocating; per-goroutine histograms are combined with Merge.
//
// The zero value is an empty histogram ready to use. It is not safe for
// concurrent use.
type Histogram struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

// bucket returns the bucket index of v (nanoseconds, ≥ 0).
func bucket(v int64) int {
	if v < subCount {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits // ≥ 1
	return shift*halfSub + int(v>>shift)
}

// bucketRange returns the smallest and largest values of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	shift := (i - halfSub) / halfSub
	mant := int64(i - shift*halfSub)
	lo = mant << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one sample.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucket(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Quantile returns the nearest-rank q-quantile (0 < q ≤ 1): the smallest
// recorded value v such that at least q·Count() samples are ≤ v, to within
// the bucket precision (the middle of its bucket, clamped to the observed
// minimum and maximum). It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := nearestRank(q, int(min(h.n, math.MaxInt)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= uint64(rank) {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Mean returns the average sample, or 0.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Max returns the largest sample, or 0.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// nearestRank returns the 1-based rank of the q-quantile among n samples.
func nearestRank(q float64, n int) int {
	r := int(math.Ceil(q * float64(n)))
	return min(max(r, 1), n)
}

// Percentile returns the exact nearest-rank q-quantile of samples (0 < q ≤
// 1), which it sorts in place; 0 for no samples. Histogram.Quantile
// approximates it.
func Percentile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return samples[nearestRank(q, len(samples))-1]
}

// Latency is a latency summary in microseconds, as reported.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// Summary returns the reported percentiles of h.
func (h *Histogram) Summary() Latency {
	us := func(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }
	return Latency{
		P50: us(h.Quantile(0.50)), P90: us(h.Quantile(0.90)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Mean: us(h.Mean()), Max: us(h.Max()),
	}
}
