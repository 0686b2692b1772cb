//go:build linux

package tcp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// testTail is a node.PipeTail over a pipe of its own holding b; it counts
// its Done calls and closes the pipe at the first.
type testTail struct {
	r, w    int
	n       int
	done    atomic.Int32
	written atomic.Bool
	tally   *tailTally
}

// tailTally counts the tails made, handed back and handed back written.
type tailTally struct{ made, done, written, twice atomic.Int64 }

func newTestTail(t testing.TB, b []byte, tally *tailTally) *testTail {
	t.Helper()
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), syscall.F_SETPIPE_SZ, 256<<10)
	for k := 0; k < len(b); {
		m, err := syscall.Write(fds[1], b[k:])
		if err != nil {
			t.Fatal(err)
		}
		k += m
	}
	tally.made.Add(1)
	return &testTail{r: fds[0], w: fds[1], n: len(b), tally: tally}
}

func (tt *testTail) Pipe() (int, int) { return tt.r, tt.n }

func (tt *testTail) Done(written bool) {
	if tt.done.Add(1) != 1 {
		tt.tally.twice.Add(1)
		return
	}
	tt.written.Store(written)
	if written {
		// Written means the pipe is empty.
		var one [1]byte
		if k, _ := syscall.Read(tt.r, one[:]); k > 0 {
			tt.tally.twice.Add(1) // counted as a fault: bytes left behind
		}
		tt.tally.written.Add(1)
	}
	syscall.Close(tt.r)
	syscall.Close(tt.w)
	tt.tally.done.Add(1)
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func (a *appClient) msg(payload []byte) routing.TransportMessage {
	return routing.TransportMessage{Version: 1,
		Onward: routing.Route{a.addr, routing.LocalAddress("x")},
		Return: routing.Route{routing.LocalAddress("app")}, Payload: payload}
}

// TestPipeTailSameBytes: a message whose payload ends in a pipe goes on
// the wire exactly as the same message with its whole payload in memory,
// for tails and heads of several sizes (payload lengths of 1 to 3 bytes),
// and the pipe is handed back written, once.
func TestPipeTailSameBytes(t *testing.T) {
	a := newAppClient(t, tcp.Config{})
	var tally tailTally
	for _, c := range []struct{ head, tail int }{{0, 1}, {5, 100}, {3, 4096}, {19, 60 << 10}, {1, 65000}} {
		payload := make([]byte, c.head+c.tail)
		for i := range payload {
			payload[i] = byte(i*7 + c.tail)
		}
		tail := newTestTail(t, payload[c.head:], &tally)
		if err := a.node.RoutePipeTail(t.Context(), a.msg(payload[:c.head]), tail); err != nil {
			t.Fatal(err)
		}
		if err := a.node.Route(t.Context(), a.msg(payload)); err != nil {
			t.Fatal(err)
		}
		spliced, usual := readFrame(t, a.peer), readFrame(t, a.peer)
		if !bytes.Equal(spliced, usual) {
			t.Fatalf("head %d tail %d: spliced frame differs from the usual encoding (%d and %d bytes)", c.head, c.tail, len(spliced), len(usual))
		}
		if !tail.written.Load() || tail.done.Load() != 1 {
			t.Fatalf("head %d tail %d: Done %d times, written %v", c.head, c.tail, tail.done.Load(), tail.written.Load())
		}
	}
	if st := a.tr.Stats(); st.PipeTails != 5 {
		t.Fatalf("PipeTails = %d, want 5", st.PipeTails)
	}
	// Too large for a frame: refused, and the pipe handed back.
	tail := newTestTail(t, make([]byte, 65530), &tally)
	if err := a.node.RoutePipeTail(t.Context(), a.msg(make([]byte, 100)), tail); !errors.Is(err, tcp.ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if tail.done.Load() != 1 || tail.written.Load() {
		t.Fatal("an oversized tail was not handed back unwritten")
	}
	if tally.twice.Load() != 0 {
		t.Fatal("a tail was handed back twice, or not empty")
	}
}

// TestPipeTailOrderMixed: senders racing on one connection with pipe
// tails and ordinary messages (small ones written by the sender itself,
// large ones from where they lie) get every message to the peer intact,
// each sender's in order, and every pipe handed back written.
func TestPipeTailOrderMixed(t *testing.T) {
	a := newAppClient(t, tcp.Config{})
	const senders, each = 4, 300
	var tally tailTally
	content := func(s, i int) []byte {
		size := []int{10, 40 << 10, 60 << 10, 5000, 1}[i%5]
		p := make([]byte, 4+size)
		binary.BigEndian.PutUint16(p, uint16(s))
		binary.BigEndian.PutUint16(p[2:], uint16(i))
		for j := 4; j < len(p); j++ {
			p[j] = byte(s*31 + i + j)
		}
		return p
	}
	errs := make(chan error, senders+1)
	go func() {
		next := make([]int, senders)
		for range senders * each {
			var h [2]byte
			if _, err := io.ReadFull(a.peer, h[:]); err != nil {
				errs <- err
				return
			}
			f := make([]byte, binary.BigEndian.Uint16(h[:]))
			if _, err := io.ReadFull(a.peer, f); err != nil {
				errs <- err
				return
			}
			var m routing.TransportMessage
			if err := m.UnmarshalBinary(f); err != nil {
				errs <- err
				return
			}
			s, i := int(binary.BigEndian.Uint16(m.Payload)), int(binary.BigEndian.Uint16(m.Payload[2:]))
			if s >= senders || i != next[s] || !bytes.Equal(m.Payload, content(s, i)) {
				errs <- errors.New("a message out of order or damaged")
				return
			}
			next[s]++
		}
		errs <- nil
	}()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				p := content(s, i)
				var err error
				if i%2 == 0 && len(p) > 100 {
					head := 4 + i%7
					err = a.node.RoutePipeTail(context.Background(), a.msg(p[:head]), newTestTail(t, p[head:], &tally))
				} else {
					err = a.node.Route(context.Background(), a.msg(p))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if tally.made.Load() == 0 || tally.written.Load() != tally.made.Load() || tally.twice.Load() != 0 {
		t.Fatalf("tails made %d, written %d, faults %d", tally.made.Load(), tally.written.Load(), tally.twice.Load())
	}
	if st := a.tr.Stats(); st.PipeTails != uint64(tally.made.Load()) {
		t.Fatalf("PipeTails = %d, want %d", st.PipeTails, tally.made.Load())
	}
}

// TestPipeTailQueuedAtClose: pipe tails queued behind a peer that reads
// nothing (a full socket, a full queue: senders wait) are all handed
// back, once, when the connection closes, and no descriptor is left open.
func TestPipeTailQueuedAtClose(t *testing.T) {
	a := newAppClient(t, tcp.Config{SendQueueBytes: 512 << 10})
	a.peer.(*net.TCPConn).SetReadBuffer(64 << 10)
	before := openFDs(t)
	var tally tailTally
	chunk := make([]byte, 60<<10)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sendErrs atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := a.node.RoutePipeTail(ctx, a.msg([]byte{1, 2, 3}), newTestTail(t, chunk, &tally)); err != nil {
					sendErrs.Add(1)
					return
				}
			}
		})
	}
	// The socket and the queue fill: senders wait for room.
	waitUntil(t, "a full queue", func() bool { return a.tr.Stats().Queued >= 4 })
	a.tr.Disconnect(a.addr)
	wg.Wait()
	waitUntil(t, "every tail handed back", func() bool { return tally.done.Load() == tally.made.Load() })
	if tally.twice.Load() != 0 {
		t.Fatal("a tail was handed back twice, or written but not empty")
	}
	if tally.written.Load() >= tally.made.Load() || sendErrs.Load() != 4 {
		t.Fatalf("written %d of %d, send errors %d: expected queued tails lost with the connection", tally.written.Load(), tally.made.Load(), sendErrs.Load())
	}
	a.peer.Close()
	waitUntil(t, "descriptors closed", func() bool { return openFDs(t) <= before-2 })
}
