package portal

import (
	"context"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// TestSharedWindow: one busy portal grants its whole window, many share
// the shared window, never below minWindow (nor above the window).
func TestSharedWindow(t *testing.T) {
	for _, tc := range []struct{ window, shared, busy, want int }{
		{2 << 20, 4 << 20, 1, 2 << 20},
		{2 << 20, 4 << 20, 2, 2 << 20},
		{2 << 20, 4 << 20, 4, 1 << 20},
		{2 << 20, 4 << 20, 16, minWindow},
		{2 << 20, -1, 16, 2 << 20},
		{256 << 10, 512 << 10, 16, 256 << 10},
	} {
		if got := sharedWindow(tc.window, tc.shared, tc.busy); got != tc.want {
			t.Errorf("sharedWindow(%d, %d, %d) = %d, want %d", tc.window, tc.shared, tc.busy, got, tc.want)
		}
	}
}

// TestStreamShareBusy: a portal counts once per epoch, in its epoch and
// the next, and no longer after.
func TestStreamShareBusy(t *testing.T) {
	var s streamShare
	t0 := time.Unix(1000, 0)
	last := make([]int64, 16)
	for i := range last {
		if got := s.busy(t0, &last[i]); got != i+1 {
			t.Fatalf("portal %d: busy %d, want %d", i, got, i+1)
		}
	}
	if got := s.busy(t0, &last[0]); got != 16 {
		t.Fatalf("counted twice: busy %d", got)
	}
	if got := s.busy(t0.Add(shareEpoch), &last[0]); got != 16 {
		t.Fatalf("the next epoch: busy %d, want the previous epoch's 16", got)
	}
	if got := s.busy(t0.Add(3*shareEpoch), &last[0]); got != 1 {
		t.Fatalf("epochs later: busy %d, want 1", got)
	}
}

// TestGrantsShare: with 16 portals of one inlet busy, a portal grants its
// part of the shared window (the limit stops growing until the bytes
// written catch up), and keeps sending Credits with the bytes written at
// a quarter of that part; alone again, it grants its whole window.
func TestGrantsShare(t *testing.T) {
	opts := Options{}.withDefaults()
	st := &counters{}
	now := time.Now()
	for range 15 {
		var last int64
		st.share.busy(now, &last)
	}
	c := &pconn{opts: opts, stats: st, ext: true, granted: uint64(opts.Window), q: newWriteQueue(opts.Window)}
	part := uint64(sharedWindow(opts.Window, opts.SharedWindow, 16))
	if part >= uint64(opts.Window) {
		t.Fatalf("part %d of a shared %d", part, opts.SharedWindow)
	}
	var credits int
	for range 20 {
		c.wrote(int(part/4), true)
		if g := c.creditDue.Swap(0); g > 0 {
			credits++
			if want := max(uint64(opts.Window), c.written+part); g != want {
				t.Fatalf("written %d: granted %d, want %d", c.written, g, want)
			}
		}
	}
	if credits != 20 {
		t.Fatalf("%d Credits for 20 quarters of the part written", credits)
	}
	// Alone: two epochs later only this portal is busy.
	c.stats.share.busy(now.Add(3*shareEpoch), new(int64))
	c.shareEpoch = 0
	st.share = streamShare{}
	c.wrote(1, true)
	if g, want := c.creditDue.Swap(0), c.written+uint64(opts.Window); g != want {
		t.Fatalf("alone: granted %d, want %d", g, want)
	}
}

// TestSendCap: while 16 portals of one side send, a portal sends no more
// than its part of the shared window (at least a quarter of the peer's
// window and a chunk) past what the peer has proven written, never past
// the peer's limit; alone, up to the limit.
func TestSendCap(t *testing.T) {
	opts := Options{}.withDefaults()
	st := &counters{}
	now := time.Now()
	for range 15 {
		var last int64
		st.sending.busy(now, &last)
	}
	win := uint64(opts.Window)
	c := &pconn{opts: opts, stats: st, ext: true, sendLimit: win, peerWindow: win, capSure: true}
	part := win/4 + uint64(opts.Chunk)
	if got := c.sendCap(); got != part {
		t.Fatalf("16 sending: cap %d, want %d", got, part)
	}
	c.peerWrote, c.sent = 100000, 100000
	if got := c.sendCap(); got != 100000+part {
		t.Fatalf("16 sending, 100000 written: cap %d, want %d", got, 100000+part)
	}
	c.sendLimit, c.sent = win+300000, 300000 // proves 300000 by itself
	if got := c.sendCap(); got != 300000+part {
		t.Fatalf("limit past the window: cap %d, want %d", got, 300000+part)
	}
	c.peerWrote, c.sent = c.sendLimit, c.sendLimit
	if got := c.sendCap(); got != c.sendLimit {
		t.Fatalf("cap %d past the limit %d", got, c.sendLimit)
	}
	st.sending = streamShare{}
	c.peerWrote, c.sendEpoch = 0, 0
	if got := c.sendCap(); got != c.sendLimit {
		t.Fatalf("alone: cap %d, want the limit %d", got, c.sendLimit)
	}
}

// TestSendCapOldInlet: an older ockamhub inlet (its Credits say nothing
// of what it wrote) whose first Credit came after it had written e bytes
// grants its window plus e, which the outlet takes for its window: a cap
// counted from limit-window then lay below e plus a quarter of the
// window, where that inlet grants again, and the outlet, with many
// portals sending, waited for a Credit that waited for it. Its sending is
// bounded by the inlet's limit alone; a Credit that says what the inlet
// wrote brings the cap back.
func TestSendCapOldInlet(t *testing.T) {
	opts := Options{}.withDefaults()
	st := &counters{}
	now := time.Now()
	for range 15 {
		var last int64
		st.sending.busy(now, &last)
	}
	win, e := uint64(opts.Window), uint64(1<<20)
	c := &pconn{opts: opts, stats: st, extOffered: true, wake: make(chan struct{}, 1)}
	credit := func(p []byte) {
		t.Helper()
		if !c.handle(context.Background(), node.NewMessage(routing.Address{}, routing.TransportMessage{Payload: p})) {
			t.Fatalf("Credit % x not handled", p)
		}
	}
	credit(AppendCredit(nil, e+win)) // the old inlet's first Credit
	if !c.ext || c.peerWindow != e+win {
		t.Fatalf("ext %v, peer window %d", c.ext, c.peerWindow)
	}
	if got, next := c.sendCap(), e+win/4; got < next {
		t.Fatalf("old inlet: cap %d below %d, where it grants again", got, next)
	}
	c.sent = e // what the inlet wrote was sent
	credit(AppendCreditWritten(nil, e+win, e))
	if got, want := c.sendCap(), e+(e+win)/4+uint64(opts.Chunk); got != want {
		t.Fatalf("written %d said: cap %d, want %d", e, got, want)
	}
}

// TestSendCapKept: a cap once returned is not taken back when more
// portals come to send (the reader tested the cap, then sized its read by
// it: a cap shrunk below the bytes sent in between wrapped the size), and
// a written count past the bytes sent does not wrap the cap below them.
func TestSendCapKept(t *testing.T) {
	opts := Options{}.withDefaults()
	st := &counters{}
	now := time.Now()
	var last int64
	st.sending.busy(now, &last) // another portal sends
	win := uint64(opts.Window)
	c := &pconn{opts: opts, stats: st, ext: true, sendLimit: 2 * win, peerWindow: win, peerWrote: win, capSure: true, sent: win}
	first := c.sendCap()
	if first <= c.sent {
		t.Fatalf("2 sending: cap %d, sent %d", first, c.sent)
	}
	for range 14 {
		var last int64
		st.sending.busy(now, &last)
	}
	if got := c.sendCap(); got < first {
		t.Fatalf("16 sending: cap %d below the %d returned before", got, first)
	}

	c = &pconn{opts: opts, stats: st, ext: true, sendLimit: 2 * win, peerWindow: win, peerWrote: ^uint64(0), capSure: true, sent: win}
	if got := c.sendCap(); got <= c.sent {
		t.Fatalf("written 2^64-1: cap %d, sent %d", got, c.sent)
	}
}
