// Package backoff computes jittered exponential delays for reconnecting
// clients, and waits them out under a context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes the delays: Initial, then doubling (times Factor) up to
// Max, each randomised to between half and all of its value ("equal
// jitter"), so that many clients cut off at once do not return at once. The
// zero value uses 100ms, 2, 30s.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
}

func (p Policy) norm() Policy {
	if p.Initial <= 0 {
		p.Initial = 100 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	if p.Factor < 1 {
		p.Factor = 2
	}
	return p
}

// Delay returns the delay before attempt n (0 for the first retry).
func (p Policy) Delay(n int) time.Duration {
	p = p.norm()
	d := float64(p.Initial)
	for range n {
		d *= p.Factor
		if d >= float64(p.Max) {
			d = float64(p.Max)
			break
		}
	}
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}

// Wait sleeps for p.Delay(n) or until ctx ends, and returns ctx.Err() in
// the latter case.
func (p Policy) Wait(ctx context.Context, n int) error {
	t := time.NewTimer(p.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NextAccept returns the delay after a failed accept (out of descriptors:
// EMFILE, ENFILE) that follows prev (0 after a success): doubling from 5 ms
// to 1 s.
func NextAccept(prev time.Duration) time.Duration {
	return min(max(2*prev, 5*time.Millisecond), time.Second)
}
