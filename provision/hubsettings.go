package provision

import (
	"net/netip"

	"github.com/ockamhub/ockamhub/hub"
)

// namedSettings are a node's named forwarding settings as the hub takes them.
type namedSettings = hub.NamedForwarding

// setHubSettings puts a node's allow-list and named forwarding into cfg,
// before the hub is built. The operator's static forwarding and tokens are
// cleared: in serve, named forwarding and its tokens belong to each node's
// owner, and no operator-wide token opens every user's names.
func setHubSettings(cfg *hub.Config, allow []netip.Prefix, nf namedSettings) {
	cfg.StaticForwarding, cfg.ForwarderToken, cfg.ForwarderTokens = false, "", nil
	cfg.Allow = allow
	cfg.NamedForwarding = nf
}

// applyHubSettings applies a node's allow-list and named forwarding to
// its running hub.
func applyHubSettings(h *hub.Hub, allow []netip.Prefix, nf namedSettings) {
	h.SetAllow(allow)
	h.SetNamedForwarding(nf)
}
