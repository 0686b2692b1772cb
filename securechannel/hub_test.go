package securechannel_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// recorder keeps every byte a hub reads from and writes to its connections.
type recorder struct {
	mu    sync.Mutex
	conns []*recordedConn
}

// recordingListener hands the hub connections that tee their traffic into
// the recorder.
type recordingListener struct {
	net.Listener
	rec *recorder
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordedConn{Conn: c}
	l.rec.mu.Lock()
	l.rec.conns = append(l.rec.conns, rc)
	l.rec.mu.Unlock()
	return rc, nil
}

type recordedConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer // what the hub read, and wrote
}

func (c *recordedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// Write records b before writing it, so that whatever the peer has
// received is already in the recording (recording afterwards raced with a
// test reading the recording as soon as a reply arrived: a truncated last
// frame), and drops what a short write did not write.
func (c *recordedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(b)
	c.mu.Unlock()
	n, err := c.Conn.Write(b)
	if n < len(b) {
		c.mu.Lock()
		c.out.Truncate(c.out.Len() - (len(b) - n))
		c.mu.Unlock()
	}
	return n, err
}

// streams returns a copy of every recorded direction of every connection.
func (r *recorder) streams() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, c := range r.conns {
		c.mu.Lock()
		out = append(out, bytes.Clone(c.in.Bytes()), bytes.Clone(c.out.Bytes()))
		c.mu.Unlock()
	}
	return out
}

// startRecordedHub runs an in-process hub on 127.0.0.1 whose connections are
// recorded.
func startRecordedHub(t *testing.T) (string, *recorder) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	hubtest.Serve(t, hub.Config{}, recordingListener{ln, rec})
	return ln.Addr().String(), rec
}

// tcpNode returns a node with a TCP transport connected to the hub.
func tcpNode(t *testing.T, hubAddr string) (*node.Node, routing.Address) {
	t.Helper()
	n := node.New(node.Config{})
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		n.Close()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	addr, err := tr.Connect(ctx, hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	return n, addr
}

// TestThroughHub is example 12: the responder's listener is reachable only
// through the hub's forwarding service; the initiator creates a channel to
// [1#hub, 0#alias, 0#secure_channel] and talks to echo_service on the
// responder's node. Every byte the hub relays is recorded: the plaintext
// (payloads and the inner route naming echo_service) appears in none of it,
// while the same message sent without the channel does appear.
func TestThroughHub(t *testing.T) {
	hubAddr, rec := startRecordedHub(t)

	responder, hubR := tcpNode(t, hubAddr)
	if err := echo.Start(t.Context(), responder, "", false); err != nil {
		t.Fatal(err)
	}
	l := listen(t, responder, "secure_channel", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	rf, err := forwarding.Register(ctx, responder, routing.Route{hubR}, "secure_channel")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()

	initiator, hubI := tcpNode(t, hubAddr)
	route := rf.Route().Append(routing.LocalAddress("secure_channel"))
	ch, err := securechannel.Create(ctx, initiator, route, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	if err != nil {
		t.Fatalf("Create(%s): %v", route, err)
	}
	defer ch.Close()

	secrets := []string{"Hello Ockam!", "attack at dawn, through the hub", string(bytes.Repeat([]byte("long secret "), 2000))}
	for _, s := range secrets {
		if got, _ := roundTrip(t, initiator, ch, s); got != s {
			t.Fatalf("reply of %d bytes, want %d", len(got), len(s))
		}
	}
	if st := l.Stats(); st.Received != 3 || st.Sent != 3 || st.DecryptFailures != 0 {
		t.Errorf("listener stats %+v", st)
	}

	streams := rec.streams()
	var total int
	for _, s := range streams {
		total += len(s)
	}
	if len(streams) != 4 || total < 3*2000*12 {
		t.Fatalf("recorded %d streams, %d bytes: the recording is incomplete", len(streams), total)
	}
	// The frames have exactly the shape of the capture of the Rust example
	// 12 programs through the Elixir hub: same frame sizes, routes of the
	// same lengths with the same well-known names, and payloads that start
	// alike (the first secret is as long as the capture's "Hello world!").
	for i, file := range []string{
		"capture-gs-12-responder-to-hub.hex", "capture-gs-12-hub-to-responder.hex", // the responder connected first
		"capture-gs-12-initiator-to-hub.hex", "capture-gs-12-hub-to-initiator.hex",
	} {
		compareShape(t, file, streams[i])
	}
	for _, needle := range []string{"Hello Ockam!", "attack at dawn", "long secret", echo.Address} {
		for i, s := range streams {
			if bytes.Contains(s, []byte(needle)) {
				t.Errorf("the hub saw %q in stream %d", needle, i)
			}
		}
	}

	// Control: the recorder does see plaintext sent without the channel, to
	// the hub's own echo_service.
	if err := initiator.Send(ctx, routing.Route{hubI, routing.LocalAddress(echo.Address)}, "in the clear"); err != nil {
		t.Fatal(err)
	}
	if got, _ := receive(t, ctx, initiator); got != "in the clear" {
		t.Fatalf("plain reply %q", got)
	}
	seen := false
	for _, s := range rec.streams() {
		seen = seen || bytes.Contains(s, []byte("in the clear"))
	}
	if !seen {
		t.Error("the recorder missed a plaintext message: the check above proves nothing")
	}
}

// compareShape checks that stream starts with frames of the same shape as
// those of a capture: the random addresses and ciphertexts differ, nothing
// else does.
func compareShape(t *testing.T, file string, stream []byte) {
	t.Helper()
	want, err := vectorfile.Frames(vector(t, file, vectorName(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := vectorfile.Frames(stream)
	if err != nil {
		t.Fatalf("%s: recorded stream: %v", file, err)
	}
	if len(got) < len(want) {
		t.Fatalf("%s: recorded %d frames, want at least %d", file, len(got), len(want))
	}
	// How many leading payload bytes are not random: the Vec<u8> length,
	// the listener-message variant and M1 length, the data counter.
	fixed := map[int]int{34: 2, 97: 1, 65: 1, 55: 3, 9: 9}
	for i, w := range want {
		g := got[i]
		wm, _, err1 := routing.DecodeMessage(w)
		gm, _, err2 := routing.DecodeMessage(g)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s frame %d: %v, %v", file, i, err1, err2)
		}
		same := len(g) == len(w)+hubAddressGrowth(wm) && len(gm.Payload) == len(wm.Payload) &&
			sameShape(gm.Onward, wm.Onward) && sameShape(gm.Return, wm.Return)
		if k := fixed[len(wm.Payload)]; same && !bytes.Equal(gm.Payload[:k], wm.Payload[:k]) {
			same = false
		}
		if !same {
			t.Errorf("%s frame %d:\n got %d bytes %v | %v | %x\nwant %d bytes %v | %v | %x",
				file, i, len(g), gm.Onward, gm.Return, gm.Payload, len(w), wm.Onward, wm.Return, wm.Payload)
		}
	}
}

// isHubAddress reports whether a captured address is one the Elixir hub
// chose (8 hex digits); this hub's have 16 (64 random bits).
func isHubAddress(a routing.Address) bool {
	_, err := hex.DecodeString(a.Value)
	return a.IsLocal() && len(a.Value) == 8 && err == nil
}

// hubAddressGrowth is how many bytes longer than the captured message m is
// through this hub: 8 per address the hub chose.
func hubAddressGrowth(m routing.TransportMessage) int {
	n := 0
	for _, a := range append(append(routing.Route{}, m.Onward...), m.Return...) {
		if isHubAddress(a) {
			n += 8
		}
	}
	return n
}

// sameShape reports whether two routes have addresses of the same types and
// lengths (twice the length for the hub's own), and the same values where
// the capture names a well-known worker.
func sameShape(got, want routing.Route) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		g, w := got[i], want[i]
		wantLen := len(w.Value)
		if isHubAddress(w) {
			wantLen = 16
		}
		if g.Type != w.Type || len(g.Value) != wantLen {
			return false
		}
		if _, err := hex.DecodeString(w.Value); err != nil && g.Value != w.Value {
			return false // a name, not a random address
		}
	}
	return true
}

// vectorName returns the name of the single segment of a capture file.
func vectorName(t *testing.T, file string) string {
	t.Helper()
	f, err := vectorfile.Load(filepath.Join("testdata", file))
	if err != nil || len(f.Names) != 1 {
		t.Fatalf("%s: %v, %d segments", file, err, len(f.Names))
	}
	return f.Names[0]
}
