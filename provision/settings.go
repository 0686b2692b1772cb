package provision

import (
	"context"
	"net/netip"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/store"
)

// MaxAllow bounds a node's allow-list.
const MaxAllow = 64

// hubConfig is the hub configuration of stored node n: the operator's
// limits with the owner's allow-list and named forwarding. The caller
// holds opMu.
func (p *Local) hubConfig(ctx context.Context, n store.Node) (hub.Config, error) {
	cfg := p.cfg.Hub
	nf, err := p.namedForwarding(ctx, n)
	if err != nil {
		return hub.Config{}, err
	}
	setHubSettings(&cfg, n.Allow, nf)
	return cfg, nil
}

// namedForwarding returns n's named forwarding settings with its tokens'
// hashes.
func (p *Local) namedForwarding(ctx context.Context, n store.Node) (namedSettings, error) {
	nf := namedSettings{Enabled: n.NamedForwarding}
	toks, err := p.cfg.Store.NodeForwarderTokens(ctx, n.ID)
	if err != nil {
		return namedSettings{}, err
	}
	nf.TokenHashes = make(map[string][32]byte, len(toks))
	for name, h := range toks {
		nf.TokenHashes[name] = h
	}
	return nf, nil
}

// change runs f (which updates the store) under opMu, then applies the
// node's stored settings to its running hub, and returns the node.
func (p *Local) change(ctx context.Context, accountID, id int64, f func() error) (Node, error) {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.isClosed() {
		return Node{}, ErrClosed
	}
	if err := f(); err != nil {
		return Node{}, err
	}
	n, err := p.cfg.Store.Node(ctx, accountID, id)
	if err != nil {
		return Node{}, err
	}
	nf, err := p.namedForwarding(ctx, n)
	if err != nil {
		return Node{}, err
	}
	p.mu.Lock()
	r := p.running[id]
	p.mu.Unlock()
	if r != nil {
		applyHubSettings(r.h, n.Allow, nf)
	}
	if p.cfg.Cluster != nil {
		p.cfg.Cluster.Changed(ctx, id)
	}
	return p.view(ctx, n), nil
}

// SetAllow implements Provisioner. The prefixes are stored masked.
func (p *Local) SetAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) (Node, error) {
	if len(allow) > MaxAllow {
		return Node{}, &AllowError{Reason: "at most 64 networks"}
	}
	clean := make([]netip.Prefix, 0, len(allow))
	for _, a := range allow {
		if !a.IsValid() {
			return Node{}, &AllowError{Reason: "invalid network"}
		}
		clean = append(clean, a.Masked())
	}
	return p.change(ctx, accountID, id, func() error {
		return p.cfg.Store.SetNodeAllow(ctx, accountID, id, clean)
	})
}

// SetNamedForwarding implements Provisioner.
func (p *Local) SetNamedForwarding(ctx context.Context, accountID, id int64, enabled bool) (Node, error) {
	return p.change(ctx, accountID, id, func() error {
		return p.cfg.Store.SetNodeNamedForwarding(ctx, accountID, id, enabled)
	})
}

// MinForwarderTokenLen is the shortest forwarder token accepted.
const MinForwarderTokenLen = 16

// MaxForwarderTokens bounds the forwarder tokens of one node: each is a
// row in the store, an entry in the running hub's table (copied on every
// change) and a line on the node's page, so an owner must not be able to
// add them without end.
const MaxForwarderTokens = 64

// SetForwarderToken implements Provisioner. Replacing the token of a name
// that has one is always allowed; a new name beyond MaxForwarderTokens is
// refused with ErrTooManyForwarderTokens.
func (p *Local) SetForwarderToken(ctx context.Context, accountID, id int64, name, token string) (Node, error) {
	if err := store.CheckForwarderName(name); err != nil {
		return Node{}, err
	}
	if len(token) < MinForwarderTokenLen || len(token) > 256 {
		return Node{}, ErrBadToken
	}
	return p.change(ctx, accountID, id, func() error {
		// Under opMu, like every settings change: the count cannot change
		// between the check and the insert.
		if _, err := p.cfg.Store.Node(ctx, accountID, id); err != nil {
			return err // another account's node: ErrNotFound, not the count
		}
		toks, err := p.cfg.Store.NodeForwarderTokens(ctx, id)
		if err != nil {
			return err
		}
		if _, ok := toks[name]; !ok && len(toks) >= MaxForwarderTokens {
			return ErrTooManyForwarderTokens
		}
		return p.cfg.Store.SetNodeForwarderToken(ctx, accountID, id, name, store.HashSecret(token))
	})
}

// DeleteForwarderToken implements Provisioner.
func (p *Local) DeleteForwarderToken(ctx context.Context, accountID, id int64, name string) (Node, error) {
	return p.change(ctx, accountID, id, func() error {
		return p.cfg.Store.DeleteNodeForwarderToken(ctx, accountID, id, name)
	})
}
