package provision

import (
	"context"
	"errors"

	"github.com/ockamhub/ockamhub/store"
)

// Adopt starts stored node id of account accountID here, if it is not
// running yet: the cluster calls it for the nodes placed on this instance.
// A node that cannot listen is recorded as failed and retried.
func (p *Local) Adopt(ctx context.Context, accountID, id int64) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	p.mu.Lock()
	_, up := p.running[id]
	_, failing := p.failed[id]
	p.mu.Unlock()
	if up || failing {
		return nil
	}
	n, err := p.cfg.Store.Node(ctx, accountID, id)
	if err != nil {
		return err
	}
	p.setStatus(ctx, &n, store.StatusStarting, "")
	ln, err := p.listen(n.Port)
	if err != nil {
		p.log.Error("adopting hub node", "node", n.Name, "port", n.Port, "err", err)
		p.fail(ctx, n, err.Error(), nil)
		return nil
	}
	p.start(ctx, &n, ln, nil)
	return nil
}

// Release stops node id here at once, closing its connections, without
// touching the store: the cluster calls it when the node moved to another
// instance, when this instance may no longer hold it (its lease could
// lapse), or to hand it over. It returns once the node has stopped.
// It does not wait for opMu, which a change may hold while the database
// hangs.
func (p *Local) Release(id int64) bool {
	p.mu.Lock()
	r := p.running[id]
	delete(p.running, id)
	delete(p.failed, id)
	p.mu.Unlock()
	if r == nil {
		return false
	}
	r.h.Close()
	r.ln.Close()
	<-r.done
	return true
}

// Reapply re-reads node id's settings from the store and applies them to
// the running node, after another instance changed them.
func (p *Local) Reapply(ctx context.Context, accountID, id int64) error {
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	r := p.running[id]
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	n, err := p.cfg.Store.Node(ctx, accountID, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	nf, err := p.namedForwarding(ctx, n)
	if err != nil {
		return err
	}
	applyHubSettings(r.h, n.Allow, nf)
	return nil
}

// NodeStats returns the counters of the running nodes, by node ID, as
// the dashboard shows them.
func (p *Local) NodeStats() map[int64]store.NodeStats {
	p.mu.Lock()
	out := make(map[int64]store.NodeStats, len(p.running))
	for id, r := range p.running {
		out[id] = nodeStats(r.h)
	}
	p.mu.Unlock()
	return out
}
