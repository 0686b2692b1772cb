package cli

import (
	"flag"
	"log/slog"
	"strconv"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// serve's protective defaults for the connections of its hub nodes
// (issue 10: no node and no source address can take the process down).
const (
	// serveMaxConnsPerNode is --max-conns for serve: no node holds more,
	// and never more than a quarter of the process budget.
	serveMaxConnsPerNode = 4096
	// serveMaxConnsPerIP is --max-conns-per-ip for serve, per node.
	serveMaxConnsPerIP = 256
	// serveFDReserve is the least number of descriptors kept out of the
	// nodes' budget for HTTP, the database, logs and the metrics
	// listener; the reserve is a tenth of the limit when that is more.
	serveFDReserve = 1024
	// maxFDLimit caps what is taken as the descriptor limit (an unlimited
	// hard limit would make the budget meaningless).
	maxFDLimit = 1 << 20
	// fallbackFDLimit is assumed where the limit cannot be read.
	fallbackFDLimit = 1024
)

// connBudget is what serve decided for its nodes' connections.
type connBudget struct {
	fdLimit, reserve, total, perNode, perIP int
	// perIPTotal is what one source may hold across all nodes (0: no
	// bound, when --max-conns-per-ip is 0).
	perIPTotal int
}

// fdReserve returns the descriptors kept for everything but node
// connections, out of limit.
func fdReserve(limit int) int {
	r := max(serveFDReserve, limit/10)
	if r > limit/2 {
		r = limit / 2 // a tiny limit: share it half and half
	}
	return r
}

// setServeDefaults makes --max-conns and --max-conns-per-ip default to
// serve's protective values (the node command keeps "none").
func setServeDefaults(fs *flag.FlagSet) {
	for name, v := range map[string]int{"max-conns": serveMaxConnsPerNode, "max-conns-per-ip": serveMaxConnsPerIP} {
		f := fs.Lookup(name)
		f.Value.Set(strconv.Itoa(v))
		f.DefValue = strconv.Itoa(v)
	}
}

// applyConnBudget raises the descriptor limit, sizes the process-wide
// budget (total > 0 overrides the automatic size) and sets cfg's per-node
// caps: a --max-conns left at its default is lowered to a quarter of the
// budget, so that one flooded node leaves room for the others.
func applyConnBudget(log *slog.Logger, fs *flag.FlagSet, total int, cfg *hub.Config) connBudget {
	limit, err := raiseFDLimit()
	if err != nil || limit <= 0 {
		log.Warn("cannot read the file descriptor limit; assuming a small one", "err", err, "assumed", fallbackFDLimit)
		limit = fallbackFDLimit
	}
	b := connBudget{fdLimit: limit, reserve: fdReserve(limit), total: total}
	if b.total <= 0 {
		b.total = max(limit-b.reserve, 1)
	}
	explicit := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !explicit["max-conns"] {
		cfg.TCP.MaxConns = max(min(cfg.TCP.MaxConns, b.total/4), 1)
	}
	b.perNode, b.perIP = cfg.TCP.MaxConns, cfg.TCP.MaxConnsPerIP
	// --max-conns-per-ip counts per node: one address connecting to many
	// nodes could still spend the whole budget, and every node would then
	// refuse everyone. Across all nodes one address holds at most a
	// quarter of the budget (or its per-node cap, if that is more).
	if b.perIP > 0 {
		b.perIPTotal = max(b.total/4, b.perIP, 1)
	}
	cfg.TCP.Budget = tcp.NewBudget(b.total).LimitPerSource(b.perIPTotal)
	log.Info("connection budget", "fd_limit", b.fdLimit, "fd_reserve", b.reserve,
		"max_conns_total", b.total, "max_conns_per_node", b.perNode, "max_conns_per_ip", b.perIP,
		"max_conns_per_ip_all_nodes", b.perIPTotal)
	if b.total > limit-serveFDReserve/4 {
		log.Warn("--max-conns-total leaves few descriptors for HTTP and the database", "fd_limit", limit, "max_conns_total", b.total)
	}
	return b
}
