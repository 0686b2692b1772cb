package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ockamhub/ockamhub/internal/telemetry"
)

// metricsFlag adds --metrics to fs.
func metricsFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics", "", "serve Prometheus /metrics, /healthz, /readyz and /debug/pprof/ on this address (e.g. 127.0.0.1:9090; off when empty). Keep it private: pprof shows internals")
}

// startMetrics serves the telemetry handler on addr until the returned stop
// function is called. An empty addr does nothing.
func startMetrics(e *env, addr string, src telemetry.Source, ready func() error, extra ...telemetry.Extra) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	srv := &http.Server{
		Handler:           metricsHostGuard(telemetry.Handler(telemetry.NewRegistry(src, extra...), ready), ln.Addr()),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("metrics server", "err", err)
		}
	}()
	e.log.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// metricsHostGuard protects a loopback debug listener from DNS rebinding:
// a web page whose name its owner made resolve to 127.0.0.1 could
// otherwise read /metrics (every node's name) and /debug/pprof/cmdline
// (the command line, --github-client-secret included) from the browser of
// anyone running the program. On a loopback listener only loopback Host
// names (localhost, *.localhost, loopback addresses; any port) are
// answered, others get 421. A listener on another address is the
// operator's private network, scraped by whatever name it has there, and
// is left as is.
func metricsHostGuard(h http.Handler, addr net.Addr) http.Handler {
	if ta, ok := addr.(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if !isLoopbackHost(host) {
			http.Error(w, "misdirected request: this server answers loopback names only", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}
