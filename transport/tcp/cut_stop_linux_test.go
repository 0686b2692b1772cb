//go:build linux

package tcp_test

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// stallingForwarder is benchForwarder whose first RewriteOnward waits for
// release: it holds the reader that plans a cut-through between judging
// the frame's route and moving the frame's payload.
type stallingForwarder struct {
	benchForwarder
	once             *sync.Once
	entered, release chan struct{}
}

func (f stallingForwarder) RewriteOnward(r routing.Route) (routing.Route, bool) {
	f.once.Do(func() {
		close(f.entered)
		<-f.release
	})
	return f.benchForwarder.RewriteOnward(r)
}

// unsent returns the bytes nc's socket has not yet had acknowledged: 0
// once its peer's socket has received everything written to nc.
func unsent(t testing.TB, nc net.Conn) int {
	t.Helper()
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	q := -1
	rc.Control(func(fd uintptr) {
		var v int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v))); e == 0 {
			q = int(v)
		}
	})
	if q < 0 {
		t.Fatal("TIOCOUTQ failed")
	}
	return q
}

// TestCutThroughForwarderStoppedBeforeWhole: a frame whose route was
// judged (a cut-through planned) while its forwarder existed, and whose
// last bytes were sent after the forwarder was stopped, is dropped as the
// usual path drops it, even when the reader never waits for those bytes
// (they are all in its socket when it moves them: it was held after
// judging the route, as a descheduled reader is). This is
// TestCutThroughForwarderStoppedMidFrame without the timing: the reader is
// held, deterministically, where the frame used to escape a second look.
func TestCutThroughForwarderStoppedBeforeWhole(t *testing.T) {
	r := newBenchRelay(t, tcp.Config{ReuseBodies: true, CutThrough: true, Logger: testLogger()})
	recv := r.dialTarget(t)
	ctx := context.Background()
	if _, err := r.node.StartWorkerConfig(ctx, benchForwarder{r}, node.WorkerConfig{Addresses: []string{"fwd2"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.node.StopWorker(ctx, "fwd"); err != nil {
		t.Fatal(err)
	}
	fw := stallingForwarder{benchForwarder{r}, new(sync.Once), make(chan struct{}), make(chan struct{})}
	defer func() {
		select {
		case <-fw.release:
		default:
			close(fw.release)
		}
	}()
	if _, err := r.node.StartWorkerConfig(ctx, fw, node.WorkerConfig{Addresses: []string{"fwd"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	src := r.dial(t)
	f := seqFrame(t, 0, 0, 60000)
	// The head: the reader judges the route (and is held there).
	if _, err := src.Write(f[:1000]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fw.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the reader never judged the frame's route")
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.node.StopWorker(sctx, "fwd"); err != nil {
		t.Fatal(err)
	}
	// The rest of the frame, all of it in the relay's socket before the
	// reader goes on: it moves it without waiting.
	if _, err := src.Write(f[1000:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame to reach the relay's socket", func() bool { return unsent(t, src) == 0 })
	close(fw.release)
	// Then, on the same connection (so after it), a frame by the other
	// forwarder: it must be the first the destination sees.
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress("fwd2")},
		Return: routing.Route{routing.LocalAddress("s0000000")}, Payload: seqPayload(0, 1, 100)}
	marker, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Write(marker); err != nil {
		t.Fatal(err)
	}
	if _, seq := checkSeq(t, readOne(t, recv)); seq != 1 {
		t.Fatalf("the destination got frame %d, sent to a forwarder stopped before the frame was whole; want only the marker (1)", seq)
	}
	if s := r.tr.Stats(); s.Unroutable != 1 || s.CutThrough != 0 {
		t.Errorf("Unroutable = %d, CutThrough = %d; want 1, 0", s.Unroutable, s.CutThrough)
	}
	waitFor(t, "the pipe to be given back", func() bool { return tcp.PipesInUse() == 0 })
}
