package securechannel

import "sync/atomic"

// Stats are counters of one channel end (Channel.Stats) or of a listener and
// every responder it created (Listener.Stats). Each dropped message is
// counted once, under the first reason it failed; the channel stays usable.
// A Stats is a plain snapshot value.
type Stats struct {
	Handshakes        uint64 // handshakes completed
	HandshakeFailures uint64 // handshake messages dropped: malformed, out of turn, or failing authentication
	HandshakeTimeouts uint64 // responders stopped because the initiator did not finish in time (listener)
	IdleTimeouts      uint64 // established responders stopped after ListenerConfig.IdleTimeout without traffic (listener)
	Overloaded        uint64 // pending handshakes dropped to make room under MaxPendingHandshakes or MaxPendingPerSource (listener)
	Evicted           uint64 // established responders closed to make room under MaxChannels (listener)
	Unauthorized      uint64 // handshakes with a peer static key that was not pinned or authorized
	Sent              uint64 // data messages encrypted and sent
	Received          uint64 // data messages decrypted and routed on
	DecryptFailures   uint64 // data messages dropped: malformed, failing authentication, or carrying an undecodable inner message
	Replays           uint64 // data messages dropped as duplicates or older than ReplayWindow
	NonceExhausted    uint64 // plaintext messages refused with ErrNonceExhausted
	SealedInPlace     uint64 // data messages sealed in the memory their sender gave up (node.WithPayloadRoom), counted in Sent too
}

type stat int

const (
	statHandshakes stat = iota
	statHandshakeFailures
	statHandshakeTimeouts
	statIdleTimeouts
	statOverloaded
	statEvicted
	statUnauthorized
	statSent
	statReceived
	statDecryptFailures
	statReplays
	statNonceExhausted
	statSealedInPlace
	numStats
)

// counters are the atomic counters behind Stats. A responder's counters have
// their listener's as parent, so each event is counted in both.
type counters struct {
	v      [numStats]atomic.Uint64
	parent *counters
}

func (c *counters) inc(s stat) {
	for ; c != nil; c = c.parent {
		c.v[s].Add(1)
	}
}

// dec undoes an inc.
func (c *counters) dec(s stat) {
	for ; c != nil; c = c.parent {
		c.v[s].Add(^uint64(0))
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		Handshakes:        c.v[statHandshakes].Load(),
		HandshakeFailures: c.v[statHandshakeFailures].Load(),
		HandshakeTimeouts: c.v[statHandshakeTimeouts].Load(),
		IdleTimeouts:      c.v[statIdleTimeouts].Load(),
		Overloaded:        c.v[statOverloaded].Load(),
		Evicted:           c.v[statEvicted].Load(),
		Unauthorized:      c.v[statUnauthorized].Load(),
		Sent:              c.v[statSent].Load(),
		Received:          c.v[statReceived].Load(),
		DecryptFailures:   c.v[statDecryptFailures].Load(),
		Replays:           c.v[statReplays].Load(),
		NonceExhausted:    c.v[statNonceExhausted].Load(),
		SealedInPlace:     c.v[statSealedInPlace].Load(),
	}
}
