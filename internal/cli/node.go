package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/ockamhub/ockamhub/hub"
)

func runNode(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("node", "[flags]", `Runs a hub node: a TCP listener with echo_service and forwarding_service,
compatible with the 2021 Rust Ockam nodes. Prints "listening on IP:PORT"
once it accepts connections. SIGINT or SIGTERM shut it down gracefully.`)
	listen := fs.String("listen", "127.0.0.1:4000", "address to listen on; 0.0.0.0:4000 or :4000 serves all interfaces, port 0 picks a free port")
	hf := hubFlags(fs, false)
	metricsAddr := metricsFlag(fs)
	setupLog := e.logFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	setupLog()
	cfg, err := hf.config()
	if err != nil {
		return err
	}
	defer hf.startGC()()
	cfg.Logger = e.log
	h, err := hub.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		h.Close()
		return fmt.Errorf("listen: %w", err)
	}
	var ready atomic.Bool
	stopMetrics, err := startMetrics(e, *metricsAddr, func() map[string]hub.Stats {
		return map[string]hub.Stats{"main": h.Stats()}
	}, func() error {
		if !ready.Load() {
			return errors.New("not serving")
		}
		return nil
	})
	if err != nil {
		ln.Close()
		h.Close()
		return err
	}
	defer stopMetrics()
	fmt.Fprintf(e.stdout, "listening on %s\n", ln.Addr())
	e.log.Info("hub node listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- h.Serve(ln) }()
	ready.Store(true)
	select {
	case err := <-served:
		h.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	ready.Store(false)
	e.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	err = h.Shutdown(sctx)
	if serr := <-served; serr != nil && !errors.Is(serr, hub.ErrClosed) {
		return serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	e.log.Info("stopped")
	return nil
}
