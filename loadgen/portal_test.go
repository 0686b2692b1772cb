package loadgen

import (
	"strings"
	"testing"
)

// TestRunPortal runs the portal benchmark small: every path carries its
// bytes, and the report has a row per path and stream count.
func TestRunPortal(t *testing.T) {
	rep, err := RunPortal(t.Context(), PortalConfig{Streams: []int{1, 4}, Bytes: 4 << 20, Samples: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Throughput) != 6 || len(rep.TTFB) != 4 || len(rep.TTFBQuiet) != 4 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Throughput {
		if r.MBps <= 0 {
			t.Errorf("%s/%d: %v MB/s", r.Path, r.Streams, r.MBps)
		}
	}
	var b strings.Builder
	if err := rep.WriteChart(&b); err != nil || !strings.Contains(b.String(), "<svg") || strings.Count(b.String(), "<rect") < 10 {
		t.Errorf("chart: %v\n%s", err, b.String())
	}
	for _, r := range append(rep.TTFB, rep.TTFBQuiet...) {
		if r.P50 <= 0 || r.RTT <= 0 {
			t.Errorf("%s: %+v", r.Path, r)
		}
	}
	for _, r := range rep.TTFBQuiet[1:] {
		if r.ExtraWarmRTT == 0 {
			t.Errorf("%s, quiet: no extra round trips in back-to-back units: %+v", r.Path, r)
		}
	}
}

func BenchmarkPortal(b *testing.B) {
	for b.Loop() {
		if _, err := RunPortal(b.Context(), PortalConfig{Streams: []int{1}, Bytes: 512 << 20, Samples: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
