//go:build linux

package portal

import (
	"context"
	"net"
	"syscall"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// tailCatcher is a PipeTailTransport that takes each pipe tail's bytes
// out of the pipe and records the message's head and the tail's size.
type tailCatcher struct {
	heads [][]byte
	tails []int
}

func (tc *tailCatcher) RouteMessage(context.Context, routing.TransportMessage) error { return nil }

func (tc *tailCatcher) CanPipeTail(routing.Address) bool { return true }

func (tc *tailCatcher) RoutePipeTail(_ context.Context, m routing.TransportMessage, tail node.PipeTail) error {
	fd, n := tail.Pipe()
	b := make([]byte, n)
	for k := 0; k < n; {
		r, err := syscall.Read(fd, b[k:])
		if err != nil || r == 0 {
			tail.Done(false)
			return err
		}
		k += r
	}
	tail.Done(true)
	tc.heads = append(tc.heads, append([]byte(nil), m.Payload...))
	tc.tails = append(tc.tails, n)
	return nil
}

// TestSpliceSendWithinCredit: a splice never takes more of the local
// socket than the peer's limit allows, whatever size the reader asked
// for (the usual path splits such a read in sendRead; a Data past the
// limit fails the portal at the peer, ErrFlowControl), and a read sized
// 0 is not the end of the stream.
func TestSpliceSendWithinCredit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := peer.Write(make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}

	n := node.New(node.Config{})
	defer n.Close()
	tc := &tailCatcher{}
	if err := n.RegisterTransport(routing.TCP, tc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &pconn{
		node: n, nc: nc, rc: directConn(nc), gen: G3, ext: true,
		route:  routing.Route{{Type: routing.TCP, Value: "127.0.0.1:1"}, routing.LocalAddress("outlet")},
		addr:   routing.LocalAddress("portal"),
		opts:   Options{}.withDefaults(),
		stats:  &counters{},
		ctx:    ctx,
		cancel: cancel,
	}
	c.sent, c.sendLimit = 1000, 1100

	// Asked for 4096 bytes with 100 of credit left: 100 go.
	p := c.takePipe(true)
	if p == nil {
		t.Fatal("no pipe")
	}
	rerr, serr := c.spliceSend(p, 4096, func() {})
	if rerr != nil || serr != nil {
		t.Fatalf("splice: read %v, send %v", rerr, serr)
	}
	if len(tc.tails) != 1 || tc.tails[0] != 100 || c.sent != 1100 {
		t.Fatalf("spliced %v with 100 bytes of credit (sent %d)", tc.tails, c.sent)
	}
	d, err := DecodeG3(append(tc.heads[0], make([]byte, 100)...), true)
	if err != nil || d.Tag != TagData || d.Offset != 1000 || len(d.Data) != 100 {
		t.Fatalf("head %x: %+v, %v", tc.heads[0], d, err)
	}

	// No credit left: nothing is read, and it is not the end.
	p = c.takePipe(true)
	if p == nil {
		t.Fatal("no pipe")
	}
	rerr, serr = c.spliceSend(p, 4096, func() {})
	if rerr != nil || serr != nil || len(tc.tails) != 1 {
		t.Fatalf("no credit: read %v, send %v, tails %v", rerr, serr, tc.tails)
	}
	if c.pipes.Load() != 0 {
		t.Fatalf("%d pipes held", c.pipes.Load())
	}
}
