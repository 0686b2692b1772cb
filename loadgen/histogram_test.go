package loadgen_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/loadgen"
)

func TestPercentile(t *testing.T) {
	ten := []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one sample p50", []time.Duration{7}, 0.5, 7},
		{"one sample p99.9", []time.Duration{7}, 0.999, 7},
		{"p50 of ten", ten, 0.5, 50},
		{"p90 of ten", ten, 0.9, 90},
		{"p99 of ten is the max", ten, 0.99, 100},
		{"p100", ten, 1, 100},
		{"tiny q is the min", ten, 0.0001, 10},
		{"unsorted input", []time.Duration{5, 1, 4, 2, 3}, 0.6, 3},
		{"p50 of two", []time.Duration{1, 2}, 0.5, 1},
		{"ties", []time.Duration{2, 2, 2, 9}, 0.75, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadgen.Percentile(slices.Clone(tt.samples), tt.q)
			if got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.samples, tt.q, got, tt.want)
			}
		})
	}
}

// TestHistogramQuantile checks the histogram against the exact
// nearest-rank percentiles, within its bucket precision.
func TestHistogramQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
		n    int
	}{
		{"small exact values", func() time.Duration { return time.Duration(rng.IntN(256)) }, 1000},
		{"uniform microseconds", func() time.Duration { return time.Duration(rng.IntN(1000)) * time.Microsecond }, 10000},
		{"exponential around 50µs", func() time.Duration { return time.Duration(rng.ExpFloat64() * 50e3) }, 20000},
		{"wide: 1µs to 1s", func() time.Duration { return time.Duration(1e3 * (1 << rng.IntN(20))) }, 5000},
		{"constant", func() time.Duration { return 12345 * time.Nanosecond }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h loadgen.Histogram
			samples := make([]time.Duration, tt.n)
			for i := range samples {
				samples[i] = tt.gen()
				h.Record(samples[i])
			}
			if h.Count() != uint64(tt.n) {
				t.Fatalf("Count = %d, want %d", h.Count(), tt.n)
			}
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := loadgen.Percentile(samples, q)
				got := h.Quantile(q)
				if diff := float64(got - want); diff > float64(want)/128+1 || -diff > float64(want)/128+1 {
					t.Errorf("Quantile(%v) = %v, want %v within 0.8%%", q, got, want)
				}
			}
			if h.Max() != slices.Max(samples) {
				t.Errorf("Max = %v, want %v", h.Max(), slices.Max(samples))
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all loadgen.Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	var empty loadgen.Histogram
	a.Merge(&empty)
	if a.Summary() != all.Summary() || a.Count() != all.Count() {
		t.Errorf("merged %+v (%d), want %+v (%d)", a.Summary(), a.Count(), all.Summary(), all.Count())
	}
	if got := empty.Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
}
