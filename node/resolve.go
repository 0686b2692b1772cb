package node

import "github.com/ockamhub/ockamhub/routing"

// RouteRewriter is implemented by an inline worker (WorkerConfig.Inline)
// whose HandleMessage does nothing with a message but forward it, as it
// is, with an onward route computed from the one it arrived with, such as
// a forwarder. It lets a transport learn where a message will go before it
// has read its payload (Node.Resolve), and then relay the message without
// calling HandleMessage.
type RouteRewriter interface {
	Worker
	// RewriteOnward returns the onward route HandleMessage would forward a
	// message with, given the onward route it arrived with (its head is
	// the worker's address), and false when HandleMessage might do
	// anything else with that message. It must have no side effects and
	// must not keep onward; the route it returns must not be modified by
	// anyone afterwards.
	RewriteOnward(onward routing.Route) (routing.Route, bool)
	// Relayed does what HandleMessage does besides forwarding (such as
	// noting when the worker was last used), for a message relayed as
	// RewriteOnward said without a call to HandleMessage, or for several
	// relayed together (Node.CommitN). It must not block.
	Relayed()
}

// maxRewrites bounds the rewriting workers one resolution goes through.
const maxRewrites = 4

// Resolution is where a message goes, found by Node.Resolve: through up to
// a few RouteRewriter workers, to a non-rewriting inline worker or a
// transport. Commit accounts for the message once it has been relayed so.
type Resolution struct {
	// Onward is the route the message leaves the last rewriter with; its
	// head is the address of Worker, or of a transport's hop.
	Onward routing.Route
	// Worker is the inline worker at Onward's head, or nil when the head
	// is not a local address (a transport takes the message: Onward still
	// holds its hop).
	Worker Worker

	via   [maxRewrites]*entry
	from  [maxRewrites]routing.Route // the route each of via was given
	nvia  int
	final *entry // nil for a transport
}

// Resolve follows onward through RouteRewriter workers and reports where a
// message with that onward route would be delivered, as Route would
// deliver it, without delivering it and without side effects. It reports
// false when that cannot be known in advance: an empty route, an unknown
// or stopping worker, a worker with a mailbox, a rewriter that declines,
// more than a few rewrites, no transport for the head's type, or a closed
// node. The caller that then relays the message itself (as Worker, or the
// transport, would) calls Commit; one that does not falls back to Route.
func (n *Node) Resolve(onward routing.Route) (Resolution, bool) {
	var r Resolution
	for {
		head, ok := onward.Next()
		if !ok || n.isClosed.Load() {
			return r, false
		}
		if head.Type != routing.Local {
			if _, ok := n.transportMap()[head.Type]; !ok {
				return r, false
			}
			r.Onward = onward
			return r, true
		}
		e := n.lookup(head)
		if e == nil || !e.inline || isClosed(e.quit) {
			return r, false
		}
		rw, ok := e.worker.(RouteRewriter)
		if !ok {
			r.Onward, r.Worker, r.final = onward, e.worker, e
			return r, true
		}
		if r.nvia == maxRewrites {
			return r, false
		}
		r.via[r.nvia], r.from[r.nvia] = e, onward
		if onward, ok = rw.RewriteOnward(onward); !ok {
			return r, false
		}
		r.nvia++
	}
}

// Recheck reports whether r, found by Resolve for onward, still says
// where a message with that onward route goes, as Resolve would find now:
// the node is open, each worker r went through still runs and rewrites
// the route it was given into the very route it returned then, and the
// last worker still runs (or the transport is still registered). It is
// Resolve without the registry lookups, for a caller that relays many
// messages with the same onward route (the same slice: the routes
// rewriters return are never modified, so the same slice means the same
// addresses).
func (n *Node) Recheck(r *Resolution, onward routing.Route) bool {
	if n.isClosed.Load() {
		return false
	}
	for i, e := range r.via[:r.nvia] {
		if !sameRoute(onward, r.from[i]) || e.stopped() {
			return false
		}
		var ok bool
		if onward, ok = e.worker.(RouteRewriter).RewriteOnward(onward); !ok {
			return false
		}
	}
	if !sameRoute(onward, r.Onward) {
		return false
	}
	if r.final != nil {
		return !r.final.stopped()
	}
	_, ok := n.transportMap()[onward[0].Type]
	return ok
}

// sameRoute reports whether a and b are the same slice.
func sameRoute(a, b routing.Route) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// stopped reports whether an inline worker has stopped (or failed to
// start): it is no longer at its addresses.
func (e *entry) stopped() bool { return e.gone.Load() }

// Commit accounts for a message relayed as r says, without Route: the
// routing counters Route would have kept, and each rewriter's Relayed.
func (n *Node) Commit(r *Resolution) { n.CommitN(r, 1) }

// CommitN is Commit for k messages relayed together as r says: the
// counters move by k, and each rewriter's Relayed is called once.
func (n *Node) CommitN(r *Resolution, k int) {
	if k <= 0 {
		return
	}
	for _, e := range r.via[:r.nvia] {
		e.routed.Add(uint64(k))
		e.worker.(RouteRewriter).Relayed()
	}
	if r.final != nil {
		r.final.routed.Add(uint64(k))
	} else {
		n.routed.Add(uint64(k))
	}
}

// Failed accounts for a message relayed as r says (and committed) whose
// last part (the last worker's, or the transport's hop) failed with err,
// as Route accounts for it: an error of the last worker's HandleMessage,
// or for a transport's hop an error of the last rewriter's (which
// forwarded the message to the transport and got the error back), is
// counted and logged now and then; it reports true. For a transport's
// hop without rewriters it does nothing and reports false: Route would
// have returned the error to the caller, who reports it.
func (n *Node) Failed(r *Resolution, err error) bool {
	switch {
	case r.final != nil:
		n.logWorkerError(r.Onward[0], err)
	case r.nvia > 0:
		n.logWorkerError(r.from[r.nvia-1][0], err)
	default:
		return false
	}
	return true
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
