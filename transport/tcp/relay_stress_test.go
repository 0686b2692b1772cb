package tcp_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// churnForwarder forwards to a route that may change at any time (as a
// named forwarder moved to another connection), counting what it relays.
type churnForwarder struct {
	route   atomic.Pointer[routing.Route]
	relayed *atomic.Int64
}

func (f *churnForwarder) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	tm := m.Transport()
	tm.Onward = *f.route.Load()
	return s.Forward(ctx, tm)
}

func (f *churnForwarder) RewriteOnward(routing.Route) (routing.Route, bool) {
	return *f.route.Load(), true
}

func (f *churnForwarder) Relayed() { f.relayed.Add(1) }

// stressPayload is sender id, seq, random bytes, and the CRC-32 of all
// that: a frame that carries another's bytes (memory reused while a
// queued frame still pointed into it) fails the check.
func stressPayload(rng *rand.Rand, id, seq int) []byte {
	n := 8 + rng.IntN(1200)
	if rng.IntN(50) == 0 {
		n = 2000 + rng.IntN(3000) // frames of their own memory too
	}
	p := make([]byte, n+4)
	binary.BigEndian.PutUint32(p, uint32(id))
	binary.BigEndian.PutUint32(p[4:], uint32(seq))
	for i := 8; i < n; i++ {
		p[i] = byte(rng.Uint32())
	}
	binary.BigEndian.PutUint32(p[n:], crc32.ChecksumIEEE(p[:n]))
	return p
}

// TestRelayStressChurn: many senders relay frames through forwarders that
// are stopped, restarted and moved between destinations, which close,
// reconnect and stall, while other frames of the same senders take the
// usual path. Every frame that arrives must be whole (its checksum), the
// sender's (its return route), and in its sender's order: a relayed
// frame whose memory was reused by another connection before it was
// written would show up here.
func TestRelayStressChurn(t *testing.T) {
	for _, aliases := range []bool{false, true} {
		t.Run(fmt.Sprintf("aliases=%v", aliases), func(t *testing.T) { relayStress(t, aliases) })
	}
}

func relayStress(t *testing.T, aliases bool) {
	const (
		senders   = 6
		each      = 12000
		nfwd      = 4
		receivers = 4
	)
	ctx := context.Background()
	r := newBenchRelay(t, tcp.Config{CutThrough: true, Aliases: aliases, SendQueueSize: 64, SendQueueBytes: 16 << 10,
		QueueFullWait: 50 * time.Millisecond, Logger: testLogger()})
	// Receivers tell who they are to "reg", which notes the address
	// their connection has on the hub.
	var regMu sync.Mutex
	reg := map[string]routing.Address{}
	regw := node.HandlerFunc(func(_ context.Context, _ node.Sender, m *node.Message) error {
		regMu.Lock()
		reg[string(m.Payload())] = m.Return()[0]
		regMu.Unlock()
		return nil
	})
	if _, err := r.node.StartWorkerConfig(ctx, regw, node.WorkerConfig{Addresses: []string{"reg"}, Inline: true}); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		failure  error
		verified atomic.Int64
		relayed  atomic.Int64
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if failure == nil {
			failure = err
		}
		mu.Unlock()
	}
	// A sender's frames leave through several forwarders, which move:
	// order is checked per receiver connection.
	senderHop := make([]atomic.Pointer[routing.Address], senders)

	type receiver struct {
		nc    net.Conn
		route routing.Route
		stall chan struct{}
	}
	var recvMu sync.Mutex
	recvs := make([]*receiver, receivers)
	nrecv := 0
	dialReceiver := func() *receiver {
		nc := r.dial(t)
		name := fmt.Sprintf("recv%d", nrecv)
		nrecv++
		f := frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("reg")}, Return: routing.Route{routing.LocalAddress("x")}, Payload: []byte(name)})
		if _, err := nc.Write(f); err != nil {
			t.Fatal(err)
		}
		var hop routing.Address
		waitFor(t, "a receiver's registration", func() bool {
			regMu.Lock()
			defer regMu.Unlock()
			var ok bool
			hop, ok = reg[name]
			return ok
		})
		rv := &receiver{nc: nc, route: routing.Route{hop, routing.LocalAddress("r")}, stall: make(chan struct{})}
		close(rv.stall)
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[int]int{}
			var hdr [2]byte
			for {
				recvMu.Lock()
				stall := rv.stall
				recvMu.Unlock()
				<-stall
				if _, err := io.ReadFull(nc, hdr[:]); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
				if _, err := io.ReadFull(nc, body); err != nil {
					return
				}
				m, _, err := routing.DecodeMessage(body)
				if err != nil {
					fail(fmt.Errorf("a relayed frame does not decode: %w", err))
					return
				}
				p := m.Payload
				if len(p) < 12 {
					fail(fmt.Errorf("payload of %d bytes", len(p)))
					return
				}
				n := len(p) - 4
				if crc32.ChecksumIEEE(p[:n]) != binary.BigEndian.Uint32(p[n:]) {
					fail(fmt.Errorf("a payload of %d bytes (sender %d, seq %d) is corrupt", len(p), binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])))
					return
				}
				id, seq := int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
				if id >= senders {
					fail(fmt.Errorf("sender %d", id))
					return
				}
				if prev, ok := last[id]; ok && seq <= prev {
					fail(fmt.Errorf("sender %d: seq %d after %d", id, seq, prev))
					return
				}
				last[id] = seq
				want := routing.Route{*senderHop[id].Load(), routing.LocalAddress(fmt.Sprintf("s%d", id))}
				if !m.Return.Equal(want) {
					fail(fmt.Errorf("sender %d's frame with return route %v, want %v", id, m.Return, want))
					return
				}
				if len(m.Onward) != 1 || m.Onward[0] != routing.LocalAddress("r") {
					fail(fmt.Errorf("onward route %v", m.Onward))
					return
				}
				verified.Add(1)
			}
		}()
		return rv
	}
	for i := range recvs {
		recvs[i] = dialReceiver()
	}
	routeTo := func(i int) *routing.Route {
		recvMu.Lock()
		defer recvMu.Unlock()
		rt := recvs[i].route.Clone() // a new slice each time, as a move makes
		return &rt
	}
	fwds := make([]*churnForwarder, nfwd)
	startFwd := func(k int) {
		f := &churnForwarder{relayed: &relayed}
		f.route.Store(routeTo(k % receivers))
		if _, err := r.node.StartWorkerConfig(ctx, f, node.WorkerConfig{Addresses: []string{fmt.Sprintf("f%d", k)}, Inline: true}); err != nil {
			t.Fatal(err)
		}
		fwds[k] = f
	}
	for k := range nfwd {
		startFwd(k)
	}

	// Senders: bursts of frames, most to the forwarders, some to the
	// usual path (an unknown address, the echo service), pipelined.
	var sendersDone sync.WaitGroup
	for id := range senders {
		nc := r.dial(t)
		// Its address on the hub, as its frames' return routes say.
		name := fmt.Sprintf("sender%d", id)
		nc.Write(frameOf(t, routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("reg")}, Return: routing.Route{routing.LocalAddress("x")}, Payload: []byte(name)}))
		waitFor(t, "a sender's registration", func() bool {
			regMu.Lock()
			defer regMu.Unlock()
			hop, ok := reg[name]
			if ok {
				senderHop[id].Store(&hop)
			}
			return ok
		})
		sendersDone.Add(1)
		go func() {
			defer sendersDone.Done()
			rng := rand.New(rand.NewPCG(uint64(id), 1))
			ret := routing.Route{routing.LocalAddress(fmt.Sprintf("s%d", id))}
			var burst []byte
			for seq := 0; seq < each; {
				burst = burst[:0]
				for n := 1 + rng.IntN(40); n > 0 && seq < each; n-- {
					onward := routing.Route{routing.LocalAddress(fmt.Sprintf("f%d", rng.IntN(nfwd)))}
					switch rng.IntN(300) {
					case 0:
						onward = routing.Route{routing.LocalAddress("nobody")}
					case 1:
						onward = append(onward, routing.LocalAddress("tail")) // another head, same forwarder
					}
					m := routing.TransportMessage{Version: 1, Onward: onward, Return: ret, Payload: stressPayload(rng, id, seq)}
					f, err := tcp.AppendFrame(nil, &m, tcp.MaxFrameSize)
					if err != nil {
						fail(err)
						return
					}
					burst = append(burst, f...)
					seq++
				}
				if _, err := nc.Write(burst); err != nil {
					fail(fmt.Errorf("sender %d: %w", id, err))
					return
				}
			}
		}()
	}

	// Churn until the senders are done.
	done := make(chan struct{})
	go func() { sendersDone.Wait(); close(done) }()
	rng := rand.New(rand.NewPCG(99, 1))
	churns := 0
	for {
		select {
		case <-done:
		default:
			switch k := rng.IntN(nfwd); rng.IntN(4) {
			case 0: // stopped and started again at the same address
				if err := r.node.StopWorker(ctx, fmt.Sprintf("f%d", k)); err != nil {
					t.Fatal(err)
				}
				startFwd(k)
			case 1: // moved to another destination
				fwds[k].route.Store(routeTo(rng.IntN(receivers)))
			case 2: // a destination closes; another takes its place
				i := rng.IntN(receivers)
				recvMu.Lock()
				old := recvs[i]
				recvMu.Unlock()
				old.nc.Close()
				nr := dialReceiver()
				recvMu.Lock()
				recvs[i] = nr
				recvMu.Unlock()
			case 3: // a destination stalls for a while
				recvMu.Lock()
				rv := recvs[rng.IntN(receivers)]
				stall := make(chan struct{})
				rv.stall = stall
				recvMu.Unlock()
				time.AfterFunc(time.Duration(rng.IntN(20))*time.Millisecond, func() { close(stall) })
			}
			churns++
			continue
		}
		break
	}
	mu.Lock()
	err := failure
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// Let the receivers read what was written, then stop them.
	waitFor(t, "the queues to drain", func() bool { return r.tr.Stats().Queued == 0 })
	recvMu.Lock()
	for _, rv := range recvs {
		rv.nc.Close()
	}
	recvMu.Unlock()
	wg.Wait()
	mu.Lock()
	err = failure
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames verified, %d relayed by their bytes, %d changes", verified.Load(), relayed.Load(), churns)
	if verified.Load() < 2000 || relayed.Load() == 0 { // many are dropped by the churn, more so under load
		t.Fatalf("%d frames verified, %d relayed by their bytes: too few to tell", verified.Load(), relayed.Load())
	}
}
