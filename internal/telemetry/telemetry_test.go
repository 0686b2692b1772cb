package telemetry_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/internal/telemetry"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestHandler(t *testing.T) {
	lat := tcp.Histogram{Counts: make([]uint64, len(tcp.LatencyBuckets)+1), Sum: 3 * time.Millisecond}
	lat.Counts[0], lat.Counts[len(tcp.LatencyBuckets)] = 2, 1
	stats := hub.Stats{Forwarders: 3, RefusedInUse: 5, TCP: tcp.Stats{Conns: 2, FramesIn: 10, Malformed: 1, QueueFull: 4, RelayLatency: lat,
		Refused: 7, RefusedPerIP: 6, RefusedAllow: 1, ProbeClosed: 8, Heartbeats: 9}}
	var notReady error = errors.New("starting")
	h := telemetry.Handler(telemetry.NewRegistry(func() map[string]hub.Stats {
		return map[string]hub.Stats{"main": stats}
	}), func() error { return notReady })

	code, body := get(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`ockamhub_forwarders{node="main"} 3`,
		`ockamhub_connections{node="main"} 2`,
		`ockamhub_frames_total{direction="in",node="main"} 10`,
		`ockamhub_decode_errors_total{kind="malformed",node="main"} 1`,
		`ockamhub_dropped_total{node="main",reason="queue_full"} 4`,
		`go_goroutines`,
		`ockamhub_connections_refused_total{node="main",reason="per_ip"} 6`,
		`ockamhub_connections_refused_total{node="main",reason="allow_list"} 1`,
		`ockamhub_connections_closed_total{node="main",reason="probing"} 8`,
		`ockamhub_forwarder_registrations_refused_total{node="main",reason="name_in_use"} 5`,
		`ockamhub_heartbeats_total{node="main"} 9`,
		`ockamhub_relay_latency_seconds_bucket{node="main",le="1e-05"} 2`,
		`ockamhub_relay_latency_seconds_count{node="main"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, h, "/readyz"); code != 503 {
		t.Errorf("/readyz before ready: %d", code)
	}
	notReady = nil
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, _ := get(t, h, "/debug/pprof/"); code != 200 {
		t.Errorf("pprof: %d", code)
	}
}
