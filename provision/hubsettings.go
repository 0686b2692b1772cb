package provision

import (
	"net/netip"

	"github.com/ockamhub/ockamhub/hub"
)

// namedSettings mirrors hub.NamedForwarding.
type namedSettings struct {
	Enabled     bool
	TokenHashes map[string][32]byte
}

// setHubSettings puts a node's allow-list and named forwarding into cfg,
// before the hub is built.
func setHubSettings(cfg *hub.Config, allow []netip.Prefix, nf namedSettings) {
	cfg.StaticForwarding = nf.Enabled
	cfg.ForwarderToken, cfg.ForwarderTokens = "", nil
}

// applyHubSettings applies a node's allow-list and named forwarding to
// its running hub.
func applyHubSettings(h *hub.Hub, allow []netip.Prefix, nf namedSettings) {
	if s, ok := any(h).(interface{ SetAllow([]netip.Prefix) }); ok {
		s.SetAllow(allow)
	}
}
