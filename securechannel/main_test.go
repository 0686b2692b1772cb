package securechannel_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/echo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const listenerName = "secure_channel_listener"

// workersPerEnd is how many workers a channel end registers on its node:
// its encrypting worker at address_local and its inline one at
// address_remote.
const workersPerEnd = 2

var echoRoute = routing.LocalAddress(echo.Address)

// vector returns one named segment of a vector file under testdata/.
func vector(tb testing.TB, file, name string) []byte {
	tb.Helper()
	f, err := vectorfile.Load(filepath.Join("testdata", file))
	if err != nil {
		tb.Fatal(err)
	}
	b, ok := f.Segments[name]
	if !ok {
		tb.Fatalf("%s has no segment %q", file, name)
	}
	return b
}

func keyPair(tb testing.TB, private []byte) noise.KeyPair {
	tb.Helper()
	kp, err := noise.NewKeyPair(noise.Key(private))
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

func newKeyPair(tb testing.TB) noise.KeyPair {
	tb.Helper()
	kp, err := noise.GenerateKeyPair()
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}

// newNode returns a node closed at the end of the test, running a
// (non-inline) echo_service.
func newNode(tb testing.TB) *node.Node {
	tb.Helper()
	n := node.New(node.Config{})
	tb.Cleanup(func() { n.Close() })
	if err := echo.Start(context.Background(), n, "", false); err != nil {
		tb.Fatal(err)
	}
	return n
}

func listen(tb testing.TB, n *node.Node, addr string, cfg securechannel.ListenerConfig) *securechannel.Listener {
	tb.Helper()
	l, err := securechannel.Listen(context.Background(), n, addr, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func create(tb testing.TB, n *node.Node, route routing.Route, cfg securechannel.Config) *securechannel.Channel {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := securechannel.Create(ctx, n, route, cfg)
	if err != nil {
		tb.Fatalf("Create(%s): %v", route, err)
	}
	tb.Cleanup(func() { ch.Close() })
	return ch
}

// roundTrip sends s to echo_service through ch from the node's app mailbox
// and returns the echoed string and the reply's return route.
func roundTrip(tb testing.TB, n *node.Node, ch *securechannel.Channel, s string) (string, routing.Route) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Send(ctx, routing.Route{ch.Address(), echoRoute}, s); err != nil {
		tb.Fatal(err)
	}
	return receive(tb, ctx, n)
}

func receive(tb testing.TB, ctx context.Context, n *node.Node) (string, routing.Route) {
	tb.Helper()
	m, err := n.Receive(ctx)
	if err != nil {
		tb.Fatalf("waiting for a reply: %v", err)
	}
	got, err := node.Body[string](m)
	if err != nil {
		tb.Fatal(err)
	}
	return got, m.Return()
}

// eventually waits until cond holds, for conditions that change in other
// goroutines with nothing to wait on (counters).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// tap is a relay worker placed on a channel's route: it records the payload
// of every message it relays and may rewrite, drop or duplicate it. Like the
// Rust Hop worker, it steps itself off the onward route and prepends itself
// to the return route, so every later message of the channel, in both
// directions, passes through it.
type tap struct {
	addr routing.Address

	mu     sync.Mutex
	frames []frame
	// edit, if set, returns the messages to relay in place of tm (none to
	// drop it). i counts the messages seen so far.
	edit func(i int, tm routing.TransportMessage) []routing.TransportMessage
}

type frame struct {
	onward, ret routing.Route
	payload     []byte
}

func startTap(tb testing.TB, n *node.Node, name string) *tap {
	tb.Helper()
	t := &tap{addr: routing.LocalAddress(name)}
	if err := n.StartWorker(context.Background(), name, t); err != nil {
		tb.Fatal(err)
	}
	return t
}

func (t *tap) HandleMessage(ctx context.Context, s node.Sender, m *node.Message) error {
	tm := routing.TransportMessage{
		Version: routing.Version,
		Onward:  m.Onward().Step(),
		Return:  m.Return().Prepend(t.addr),
		Payload: bytes.Clone(m.Payload()),
	}
	t.mu.Lock()
	i := len(t.frames)
	t.frames = append(t.frames, frame{tm.Onward, tm.Return, tm.Payload})
	edit := t.edit
	t.mu.Unlock()
	out := []routing.TransportMessage{tm}
	if edit != nil {
		out = edit(i, tm)
	}
	for _, o := range out {
		if err := s.Forward(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

func (t *tap) recorded() []frame {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]frame(nil), t.frames...)
}

func (t *tap) setEdit(f func(i int, tm routing.TransportMessage) []routing.TransportMessage) {
	t.mu.Lock()
	t.edit = f
	t.mu.Unlock()
}
