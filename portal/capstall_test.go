package portal_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// TestSendCapWholeWindows: two portals of one outlet stream at once to
// inlets that grant a whole window at a time, once all of it has come
// (not a quarter at a time, as an ockamhub peer does). The outlet's
// sending cap (Options.SharedWindow) held each portal below its inlet's
// limit, and the inlet waited for the limit: both streams stalled for
// good. The cap lifts when no Credit comes (creditStall).
func TestSendCapWholeWindows(t *testing.T) {
	const total, window = 4 << 20, 1 << 20
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i * 7)
	}
	start := make(chan struct{})
	target := serveTCP(t, func(c net.Conn) {
		select {
		case <-start:
		case <-t.Context().Done():
			return
		}
		c.Write(data)
		c.Close()
	})
	n := node.New(node.Config{})
	t.Cleanup(func() { n.Close() })
	// The least shared window: each of two busy portals may send its
	// part, 512 KiB (at least a quarter of the inlet's window and a
	// chunk), past what the inlet has written.
	o, err := portal.NewOutlet(n, portal.OutletConfig{Target: target, Options: portal.Options{SharedWindow: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	type inlet struct {
		mb    *node.Mailbox
		route routing.Route
	}
	var ins []inlet
	for range 2 {
		mb, route, pong := fakeInlet(t, n, routing.Route{o.Address()})
		if pong.Ext == nil {
			t.Fatalf("answer %+v, want a Pong with the offer", pong)
		}
		send(t, mb, route, portal.AppendCreditWritten(nil, window, 0))
		ins = append(ins, inlet{mb, route})
	}
	close(start)
	var wg sync.WaitGroup
	errs := make(chan error, len(ins))
	for _, in := range ins {
		wg.Go(func() {
			limit := uint64(window)
			for at := uint64(0); at < total; {
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				r, err := in.mb.Receive(ctx)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("at %d of %d, limit %d: %w", at, total, limit, err)
					return
				}
				m, err := portal.DecodeG3(r.Payload(), true)
				if err != nil {
					errs <- err
					return
				}
				if m.Tag != portal.TagData || m.Offset != at {
					errs <- fmt.Errorf("got tag %d at %d, want Data at %d", m.Tag, m.Offset, at)
					return
				}
				at += uint64(len(m.Data))
				if at == limit { // all of the window came: the next one
					limit += window
					if err := in.mb.Send(t.Context(), in.route, node.Raw(portal.AppendCreditWritten(nil, limit, at))); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
