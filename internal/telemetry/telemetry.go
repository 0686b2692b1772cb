// Package telemetry exposes the hubs' counters to operators: Prometheus
// metrics, health and readiness probes, and pprof, on a debug listener
// separate from the service's own. It is the only package that imports
// Prometheus; it reads the plain Stats() counters of the hub library.
package telemetry

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Source returns the current counters of every hub node in the process,
// keyed by a node name that becomes the "node" label.
type Source func() map[string]hub.Stats

// NewRegistry returns a registry with the Go runtime and process metrics
// and the hub metrics read from src at each scrape.
//
// extra adds process-wide metrics outside the hubs (a cluster's).
func NewRegistry(src Source, extra ...Extra) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&hubCollector{src: src},
	)
	for _, x := range extra {
		if x.Counter {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: x.Name, Help: x.Help}, x.Value))
		} else {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: x.Name, Help: x.Help}, x.Value))
		}
	}
	return reg
}

// Extra is an unlabelled metric read at each scrape.
type Extra struct {
	Name, Help string
	Counter    bool // a counter; a gauge otherwise
	Value      func() float64
}

// Handler serves /metrics, /healthz (the process is up), /readyz (ready
// reports nil: accepting connections) and /debug/pprof/ on one mux. Mount
// it on a loopback or otherwise private listener: pprof reveals internals.
func Handler(reg *prometheus.Registry, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *hub.Stats) float64
}

func d(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("ockamhub_"+name, help, append([]string{"node"}, labels...), nil)
}

var (
	framesDesc  = d("frames_total", "Frames received (in) and sent (out).", "direction")
	bytesDesc   = d("bytes_total", "Bytes received (in) and sent (out), frame headers included.", "direction")
	dropsDesc   = d("dropped_total", "Messages dropped, by reason.", "reason")
	decodeDesc  = d("decode_errors_total", "Bad frames that closed their connection, by kind.", "kind")
	refusedDesc = d("connections_refused_total", "Connections refused at accept, by reason: node_cap (--max-conns), per_ip (--max-conns-per-ip), budget (the process-wide connection budget), allow_list (the node's allow-list).", "reason")
	closedDesc  = d("connections_closed_total", "Open connections closed by the hub, by reason: allow_list (no longer admitted), probing (kept sending to nonexistent addresses).", "reason")
	regRefDesc  = d("forwarder_registrations_refused_total", "Forwarder registrations refused, by reason: over_cap (--max-forwarders-per-conn), name_in_use (a name held by another connection), unauthorized (token), invalid.", "reason")
	latencyDesc = d("relay_latency_seconds", "Time from a message being handed to a connection (by the echo service, a forwarder, a worker) until it is written to the socket; one message in 16 is sampled.")
	plainGauges = []metric{
		{d("connections", "Open TCP connections."), prometheus.GaugeValue, func(s *hub.Stats) float64 { return float64(s.TCP.Conns) }},
		{d("forwarders", "Live forwarders (random and named)."), prometheus.GaugeValue, func(s *hub.Stats) float64 { return float64(s.Forwarders) }},
		{d("send_queue_depth", "Messages waiting in connection send queues."), prometheus.GaugeValue, func(s *hub.Stats) float64 { return float64(s.TCP.Queued) }},
		{d("workers", "Workers running on the node (services, forwarders, connection aliases)."), prometheus.GaugeValue, func(s *hub.Stats) float64 { return float64(s.Node.Workers) }},
		{d("connections_accepted_total", "Connections accepted."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.TCP.Accepted) }},
		{d("heartbeats_total", "Heartbeat frames (00 04 01 00 00 00) received and dropped."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.TCP.Heartbeats) }},
		{d("probes_delayed_total", "Messages to nonexistent addresses beyond a connection's allowance, each delaying its sender."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.TCP.ProbeDelayed) }},
		{d("accept_errors_total", "Failed accepts (out of file descriptors), each followed by a backoff."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.TCP.AcceptErrors) }},
		{d("forwarders_registered_total", "Forwarders registered."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.ForwardersRegistered) }},
		{d("forwarders_expired_total", "Forwarders removed for being idle."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.ForwardersExpired) }},
		{d("frames_cut_through_total", "Large frames relayed with their payload spliced from socket to socket (Linux; --no-cut-through turns it off); also counted in frames_total."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.TCP.CutThrough) }},
		{d("messages_routed_total", "Messages routed by the node to a worker or a connection."), prometheus.CounterValue, func(s *hub.Stats) float64 { return float64(s.Node.Routed) }},
	}
)

type hubCollector struct{ src Source }

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range plainGauges {
		ch <- m.desc
	}
	ch <- framesDesc
	ch <- bytesDesc
	ch <- dropsDesc
	ch <- decodeDesc
	ch <- refusedDesc
	ch <- closedDesc
	ch <- regRefDesc
	ch <- latencyDesc
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	for name, s := range c.src() {
		for _, m := range plainGauges {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s), name)
		}
		counter := func(desc *prometheus.Desc, v uint64, label string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), name, label)
		}
		counter(framesDesc, s.TCP.FramesIn, "in")
		counter(framesDesc, s.TCP.FramesOut, "out")
		counter(bytesDesc, s.TCP.BytesIn, "in")
		counter(bytesDesc, s.TCP.BytesOut, "out")
		counter(dropsDesc, s.TCP.Unroutable, "unroutable")
		counter(dropsDesc, s.TCP.NoConnection, "no_connection")
		counter(dropsDesc, s.TCP.QueueFull, "queue_full")
		counter(dropsDesc, s.TCP.TooLarge, "too_large")
		counter(decodeDesc, s.TCP.Malformed, "malformed")
		counter(decodeDesc, s.TCP.EmptyFrames, "empty_frame")
		counter(decodeDesc, s.TCP.Oversized, "oversized_frame")
		counter(decodeDesc, s.TCP.FrameTimeouts, "frame_timeout")
		counter(refusedDesc, s.TCP.RefusedCap, "node_cap")
		counter(refusedDesc, s.TCP.RefusedPerIP, "per_ip")
		counter(refusedDesc, s.TCP.RefusedBudget, "budget")
		counter(refusedDesc, s.TCP.RefusedAllow, "allow_list")
		counter(closedDesc, s.TCP.AllowClosed, "allow_list")
		counter(closedDesc, s.TCP.ProbeClosed, "probing")
		counter(regRefDesc, s.RefusedOverCap, "over_cap")
		counter(regRefDesc, s.RefusedInUse, "name_in_use")
		counter(regRefDesc, s.RefusedUnauthorized, "unauthorized")
		counter(regRefDesc, s.RefusedInvalid, "invalid")
		h := s.TCP.RelayLatency
		buckets := make(map[float64]uint64, len(tcp.LatencyBuckets))
		var cum uint64
		for i, le := range tcp.LatencyBuckets {
			if i < len(h.Counts) {
				cum += h.Counts[i]
			}
			buckets[le.Seconds()] = cum
		}
		total := cum
		if len(h.Counts) > len(tcp.LatencyBuckets) {
			total += h.Counts[len(tcp.LatencyBuckets)]
		}
		ch <- prometheus.MustNewConstHistogram(latencyDesc, total, h.Sum.Seconds(), buckets, name)
	}
}
