//go:build linux

package portal_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// countFDs counts this process's open file descriptors.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// pipesInFlight returns the portal pipes open and not idle in the pool.
func pipesInFlight() int {
	open, idle := portal.PortalPipes()
	return open - idle
}

// TestSpliceStreams: streams through a hub, both ways at once (an echo
// target), on one connection per node, arrive intact (SHA-256); the
// readers' bytes went to the hub connections spliced (pipe tails), and
// once the portals have closed no pipe is in flight.
func TestSpliceStreams(t *testing.T) {
	hubAddr, _ := startHub(t, hub.Config{}, nil)
	addr, in, o := plainPair(t, hubAddr, echoTarget(t), portal.OutletConfig{}, portal.InletConfig{})
	before := portal.SplicedMessages()
	size := int64(64 << 20)
	if testing.Short() || raceEnabled {
		size = 8 << 20
	}
	const streams = 8
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := echoCheck(t, c, size+int64(i)*1001); err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "portals closed", func() bool { return in.Stats().Open == 0 && o.Stats().Open == 0 })
	if in.Stats().Failed != 0 || o.Stats().Failed != 0 {
		t.Fatalf("portals failed: inlet %+v, outlet %+v", in.Stats(), o.Stats())
	}
	// Each way streams×size bytes in chunks of up to 60 KiB: most of them
	// spliced (a read finds no pipe free only while a portal has
	// pipesPerPortal in flight).
	chunks := 2 * streams * size / (60 << 10)
	if got := int64(portal.SplicedMessages() - before); got < chunks/4 {
		t.Fatalf("%d messages spliced, want at least a quarter of %d", got, chunks)
	}
	waitFor(t, "pipes back in the pool", func() bool { return pipesInFlight() == 0 })
}

// pausable is a TCP proxy to a hub whose direction from its client to the
// hub can be paused (it stops reading) and whose connections can be
// closed at once.
type pausable struct {
	addr   string
	mu     sync.Mutex
	paused chan struct{} // open while paused
	conns  []net.Conn
}

func newPausable(t *testing.T, target string) *pausable {
	p := &pausable{}
	p.addr = serveTCP(t, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go io.Copy(c, up)
		buf := make([]byte, 32<<10)
		for {
			p.mu.Lock()
			ch := p.paused
			p.mu.Unlock()
			if ch != nil {
				<-ch
			}
			k, err := c.Read(buf)
			if k > 0 {
				if _, err := up.Write(buf[:k]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	return p
}

func (p *pausable) pause() {
	p.mu.Lock()
	p.paused = make(chan struct{})
	p.mu.Unlock()
}

func (p *pausable) resume() {
	p.mu.Lock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
	p.mu.Unlock()
}

func (p *pausable) closeAll() {
	p.mu.Lock()
	for _, c := range p.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	p.mu.Unlock()
	p.resume()
}

// TestSpliceQueuedAtClose: uploads through an inlet whose connection to
// the hub stops moving (its send queue fills with pipe tails), then the
// portals close (the tails queued are written once the connection moves
// again) or the connection closes (they are handed back): either way no
// pipe stays in flight and no descriptor is left open.
func TestSpliceQueuedAtClose(t *testing.T) {
	for _, connClose := range []bool{false, true} {
		t.Run(fmt.Sprintf("connClose=%v", connClose), func(t *testing.T) {
			fds := countFDs(t)
			hubAddr, _ := startHub(t, hub.Config{}, nil)
			sink := serveTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) })
			route, o, _ := startOutlet(t, hubAddr, portal.OutletConfig{Target: sink})
			px := newPausable(t, hubAddr)
			n, tr, conn := hubtest.Connect(t, px.addr)
			addr, in := startInlet(t, n, portal.InletConfig{Route: append(routing.Route{conn}, route[1:]...)})
			const streams = 16
			clients := make([]net.Conn, streams)
			var wg sync.WaitGroup
			for i := range clients {
				clients[i] = dial(t, addr)
				wg.Go(func() {
					buf := make([]byte, 64<<10)
					for {
						if _, err := clients[i].Write(buf); err != nil {
							return
						}
					}
				})
			}
			waitFor(t, "data spliced", func() bool { return portal.SplicedMessages() > 0 })
			px.pause()
			waitFor(t, "pipe tails queued", func() bool { return tr.Stats().Queued > 0 && pipesInFlight() > 0 })
			if connClose {
				px.closeAll()
			} else {
				in.Close()
				px.resume()
			}
			for _, c := range clients {
				c.Close()
			}
			wg.Wait()
			waitFor(t, "pipes back in the pool", func() bool { return pipesInFlight() == 0 })
			in.Close()
			o.Close()
			tr.Close()
			n.Close()
			px.closeAll()
			waitFor(t, "descriptors closed", func() bool {
				open, idle := portal.PortalPipes()
				return open == idle && countFDs(t)-2*idle <= fds+8
			})
		})
	}
}
