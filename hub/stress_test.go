package hub_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// stressPayload is the payload of sender s's n-th message to one receiver:
// s and n, then size-8 bytes drawn from a generator seeded by both, so the
// receiver can regenerate and compare every byte.
func stressPayload(s, n, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, uint32(s))
	binary.BigEndian.PutUint32(p[4:], uint32(n))
	r := rand.New(rand.NewPCG(uint64(s), uint64(n)))
	for i := 8; i < size; i++ {
		p[i] = byte(r.Uint32())
	}
	return p
}

// stressRoute is a long return route (about 18 KB) whose values spell s and n.
func stressRoute(s, n int) routing.Route {
	ret := make(routing.Route, 300)
	for j := range ret {
		ret[j] = routing.LocalAddress(fmt.Sprintf("%04d-%06d-%03d-", s, n, j) + strings.Repeat("r", 40))
	}
	return ret
}

// TestStressForwardersIntact: several senders pipeline frames of mixed
// sizes (across the direct-write, vectored-payload and reused-body
// thresholds, plus frames that are mostly a long return route) through
// forwarders to several slow receivers at once. Every frame arrives, in
// order per sender, with every payload byte and every route address
// intact: the hub's reused buffers, deferred and partial writes and
// writer goroutines may reorder nothing and corrupt nothing.
func TestStressForwardersIntact(t *testing.T) {
	const receivers, senders = 3, 6
	each := 120 // per sender and receiver
	if testing.Short() {
		each = 30
	}
	sizes := []int{8, 100, 4095, 4096, 9000, 16383, 16384, 16400, 30000, 60000}
	// A queue that never drops within the test: every frame must arrive.
	_, addr := hubtest.Start(t, hub.Config{TCP: tcp.Config{QueueFullWait: time.Minute}})

	type recv struct {
		nc  net.Conn
		br  *bufio.Reader
		fwd routing.Address
	}
	rs := make([]*recv, receivers)
	for i := range rs {
		c := dialRaw(t, addr)
		c.write(frameOf(t, routing.Route{routing.LocalAddress(forwarding.ServiceAddress)}, routing.Route{routing.LocalAddress(fmt.Sprintf("recv%d", i))}, []byte("register")))
		m := decode(t, c.readFrame())
		if len(m.Return) != 1 {
			t.Fatalf("registration reply return route %v", m.Return)
		}
		rs[i] = &recv{nc: c.Conn, br: bufio.NewReaderSize(c.Conn, 4096), fwd: m.Return[0]}
	}

	var wg sync.WaitGroup
	var conns []net.Conn
	for s := range senders {
		c := dialRaw(t, addr)
		conns = append(conns, c.Conn)
		wg.Go(func() {
			bw := bufio.NewWriterSize(c.Conn, 32<<10)
			for n := range each {
				for r := range receivers {
					onward := routing.Route{rs[r].fwd, routing.LocalAddress("app")}
					ret := routing.Route{routing.LocalAddress(fmt.Sprintf("s%d", s))}
					var p []byte
					if (n+s)%7 == 3 {
						ret = stressRoute(s, n) // and no payload: the frame is its routes
					} else {
						p = stressPayload(s, n, sizes[(n*receivers+r+s)%len(sizes)])
					}
					if _, err := bw.Write(frameOf(t, onward, ret, p)); err != nil {
						if !errors.Is(err, net.ErrClosed) { // closed after a receiver failed
							t.Errorf("sender %d: %v", s, err)
						}
						return
					}
				}
				if n%5 == 0 {
					bw.Flush()
				}
			}
			if err := bw.Flush(); err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("sender %d: %v", s, err)
			}
		})
	}

	errs := make(chan error, receivers)
	for r, rc := range rs {
		go func() {
			errs <- func() error {
				next := make([]int, senders)
				for got := 0; got < senders*each; got++ {
					rc.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
					var hdr [2]byte
					if _, err := io.ReadFull(rc.br, hdr[:]); err != nil {
						return fmt.Errorf("receiver %d after %d frames: %w", r, got, err)
					}
					body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
					if _, err := io.ReadFull(rc.br, body); err != nil {
						return fmt.Errorf("receiver %d after %d frames: %w", r, got, err)
					}
					m, _, err := routing.DecodeMessage(body)
					if err != nil {
						return fmt.Errorf("receiver %d frame %d: %w", r, got, err)
					}
					var s, n int
					switch {
					case len(m.Payload) >= 8:
						s, n = int(binary.BigEndian.Uint32(m.Payload)), int(binary.BigEndian.Uint32(m.Payload[4:]))
					case len(m.Payload) == 0 && len(m.Return) > 1:
						// A frame of routes: its first address spells s and n.
						if _, err := fmt.Sscanf(m.Return[1].Value, "%04d-%06d-", &s, &n); err != nil {
							return fmt.Errorf("receiver %d frame %d: return address %.20q…: %w", r, got, m.Return[1].Value, err)
						}
					default:
						return fmt.Errorf("receiver %d frame %d: payload of %d bytes", r, got, len(m.Payload))
					}
					if s >= senders || n != next[s] {
						return fmt.Errorf("receiver %d frame %d: sender %d message %d, want message %d", r, got, s, n, next[min(s, senders-1)])
					}
					next[s]++
					if len(m.Payload) > 0 && string(stressPayload(s, n, len(m.Payload))) != string(m.Payload) {
						return fmt.Errorf("receiver %d: sender %d message %d (%d bytes): payload corrupted", r, s, n, len(m.Payload))
					}
					if len(m.Onward) != 1 || m.Onward[0] != routing.LocalAddress(fmt.Sprintf("recv%d", r)) {
						return fmt.Errorf("receiver %d: sender %d message %d: onward route %v", r, s, n, m.Onward)
					}
					wantRet := routing.Route{routing.LocalAddress(fmt.Sprintf("s%d", s))}
					if (n+s)%7 == 3 != (len(m.Payload) == 0) {
						return fmt.Errorf("receiver %d: sender %d message %d: payload of %d bytes", r, s, n, len(m.Payload))
					}
					if (n+s)%7 == 3 {
						wantRet = stressRoute(s, n)
					}
					if len(m.Return) != len(wantRet)+1 || !m.Return[1:].Equal(wantRet) {
						return fmt.Errorf("receiver %d: sender %d message %d: return route corrupted", r, s, n)
					}
				}
				return nil
			}()
		}()
	}
	for range receivers {
		if err := <-errs; err != nil {
			t.Error(err)
			for _, rc := range rs {
				rc.nc.Close() // unblock the others
			}
			for _, c := range conns {
				c.Close()
			}
		}
	}
	wg.Wait()
}

// frameOf is a frame (length prefix included) of a message.
func frameOf(t testing.TB, onward, ret routing.Route, payload []byte) []byte {
	t.Helper()
	m := routing.TransportMessage{Version: routing.Version, Onward: onward, Return: ret, Payload: payload}
	f, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
