package hub_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestMaintainRetriesAClosedConnectionAtOnce: a front end that accepts
// and closes connections (a cluster instance that cannot reach the
// node's owner yet) must not hold Maintain for RegisterTimeout: each
// attempt ends when its connection closes, and it registers as soon as
// the hub is reachable again.
func TestMaintainRetriesAClosedConnectionAtOnce(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Int32
	refuse.Store(3)
	// The accept loop is in the group too, so that the relays it adds
	// never race with Wait: close the listener, then wait for all.
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if refuse.Add(-1) >= 0 {
				c.Close()
				continue
			}
			wg.Go(func() {
				defer c.Close()
				h, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer h.Close()
				go func() {
					io.Copy(h, c)
					h.Close()
				}()
				io.Copy(c, h)
			})
		}
	})

	ctx, cancel := context.WithCancel(t.Context())
	rn := node.New(node.Config{})
	rt, _ := tcp.New(rn, tcp.Config{})
	registered := make(chan routing.Route, 1)
	var lost atomic.Int32
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- forwarding.Maintain(ctx, rn, rt, forwarding.MaintainConfig{
			Hub: ln.Addr().String(), Destination: "echoer",
			Backoff:         backoff.Policy{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
			RegisterTimeout: 30 * time.Second,
			OnRegistered:    func(r routing.Route) { registered <- r },
			OnDisconnected: func(err error) {
				if strings.Contains(err.Error(), "lost before it answered the registration") {
					lost.Add(1)
				}
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		rt.Close()
		rn.Close()
	})
	select {
	case <-registered:
	case <-time.After(20 * time.Second):
		t.Fatal("not registered within 20 s (RegisterTimeout is 30 s: attempts on closed connections are waiting it out)")
	}
	if lost.Load() < 1 {
		t.Errorf("no attempt ended as 'lost before it answered the registration'")
	}
	t.Logf("registered %v after start, through %d closed connections", time.Since(start), lost.Load())
}
