package portal

import "sync/atomic"

// RustChannelMessages is how many data messages a 2021 Rust secure channel
// encrypts per direction before it refuses every further one (its u16
// nonce stops at 65535 and is never renewed; portals.md §10.3).
const RustChannelMessages = 65535

// budgetReserve is kept back from a budget for the Disconnect that closes a
// portal when the budget runs out, so that the peer always learns of it.
const budgetReserve = 1

// Budget counts the messages portals send into one secure channel, so that
// they stop, with a Disconnect, before the channel's nonce would wrap or
// the channel would start refusing (and silently dropping) messages. Every
// portal whose route starts with that channel shares its Budget. It is safe
// for concurrent use; the zero value allows nothing: use NewBudget.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of n messages, e.g. RustChannelMessages less
// what the channel has already carried.
func NewBudget(n int) *Budget { return &Budget{limit: int64(n)} }

// take takes one message for data (keeping the reserve) or, with last set,
// for the final Disconnect.
func (b *Budget) take(last bool) bool {
	if b == nil {
		return true
	}
	keep := int64(budgetReserve)
	if last {
		keep = 0
	}
	for {
		u := b.used.Load()
		if u+1 > b.limit-keep {
			return false
		}
		if b.used.CompareAndSwap(u, u+1) {
			return true
		}
	}
}

// Take takes one message for a message sent into the channel by something
// other than a portal (portals take their own), keeping back the reserve
// for a portal's final Disconnect. It reports false when the budget is
// spent.
func (b *Budget) Take() bool { return b.take(false) }

// Used returns the messages taken so far.
func (b *Budget) Used() int { return int(b.used.Load()) }

// Remaining returns the messages left, reserve included.
func (b *Budget) Remaining() int { return int(b.limit - b.used.Load()) }
