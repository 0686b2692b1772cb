package web

import (
	"fmt"
	"testing"
	"time"
)

// TestSignInLimiterSweepBounded: when the limiter's table is full of
// buckets still in use (a flood from many /64s), each new source made it
// scan the whole table under its lock. Now the table is swept at most once
// a second; new sources share the overflow bucket meanwhile.
func TestSignInLimiterSweepBounded(t *testing.T) {
	l := newLimiter(60, 10)
	now := time.Unix(1_700_000_000, 0)
	for i := range limiterMaxKeys {
		l.allow(fmt.Sprint("src", i), now) // each bucket one token short: in use
	}
	first := now.Add(time.Millisecond)
	l.allow("new-0", first)
	if !l.lastSweep.Equal(first) {
		t.Fatalf("full table not swept: last sweep %v", l.lastSweep)
	}
	for i := range 100 {
		l.allow(fmt.Sprint("new-", i+1), first.Add(time.Duration(i)*time.Millisecond))
	}
	if !l.lastSweep.Equal(first) {
		t.Fatalf("swept again within a second (last %v)", l.lastSweep)
	}
	later := first.Add(2 * time.Second)
	l.allow("new-late", later)
	if !l.lastSweep.Equal(later) {
		t.Fatalf("not swept after a second (last %v)", l.lastSweep)
	}
}
