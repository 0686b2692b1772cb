package hub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// dialFrom dials addr from the local IP src (127.0.0.x).
func dialFrom(t *testing.T, src, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c}
}

// echoes reports whether c gets its echo back (the connection was admitted
// and is open).
func (c *rawConn) echoes() bool {
	if _, err := c.Write(frames(c.t, "frame-echo-request")[0]); err != nil {
		return false
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := frames(c.t, "frame-echo-reply")[0]
	got := make([]byte, len(want))
	_, err := io.ReadFull(c, got)
	return err == nil && bytes.Equal(got, want)
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// TestAllowList: a node admits only its owner's networks (issue 10,
// finding 5): a connection from elsewhere is refused at accept and counted;
// SetAllow applies to the next connection and closes open ones from
// networks no longer admitted.
func TestAllowList(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{Allow: prefixes("127.0.0.2/32")})
	if !dialFrom(t, "127.0.0.2", addr).echoes() {
		t.Fatal("a connection from the allowed network was not served")
	}
	if dialFrom(t, "127.0.0.1", addr).echoes() {
		t.Fatal("a connection from outside the allow-list was served")
	}
	waitFor(t, time.Second, "refusal counted", func() bool { return h.Stats().TCP.RefusedAllow == 1 })
	if s := h.Stats().TCP; s.Refused != 1 || s.Accepted != 1 {
		t.Fatalf("refused %d accepted %d, want 1 and 1", s.Refused, s.Accepted)
	}

	// Widen it: 127.0.0.1 gets in, at once.
	h.SetAllow(prefixes("127.0.0.1/32", "127.0.0.2/32"))
	one := dialFrom(t, "127.0.0.1", addr)
	two := dialFrom(t, "127.0.0.2", addr)
	if !one.echoes() || !two.echoes() {
		t.Fatal("connections from the widened allow-list not served")
	}

	// Narrow it: the open connection from 127.0.0.1 is closed, the one from
	// 127.0.0.2 keeps working, a new one from 127.0.0.1 is refused.
	h.SetAllow(prefixes("127.0.0.2/32"))
	one.expectClosed()
	if !two.echoes() {
		t.Fatal("the connection from the still-allowed network was disturbed")
	}
	if got := h.Stats().TCP.AllowClosed; got != 1 {
		t.Fatalf("AllowClosed = %d, want 1", got)
	}
	if dialFrom(t, "127.0.0.1", addr).echoes() {
		t.Fatal("a new connection from a removed network was served")
	}

	// Empty: open to everyone again (the 2021 behaviour).
	h.SetAllow(nil)
	if !dialFrom(t, "127.0.0.1", addr).echoes() {
		t.Fatal("an empty allow-list does not admit everyone")
	}
}

// TestAllowListIPv4MappedPrefix: an allow-list entry written as an
// IPv4-mapped IPv6 prefix admits the IPv4 peers it names.
func TestAllowListIPv4MappedPrefix(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{Allow: prefixes("::ffff:127.0.0.0/104")})
	if !dialRaw(t, addr).echoes() {
		t.Fatal("::ffff:127.0.0.0/104 does not admit 127.0.0.1")
	}
}

// namedReceiver is a Go node whose worker "echoer" replies tag:body.
func namedReceiver(t *testing.T, ctx context.Context, addr, tag string) *goClient {
	c := newGoClient(t, addr)
	c.node.StartWorker(ctx, "echoer", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		body, _ := node.Body[string](m)
		return s.Send(ctx, m.Return(), tag+":"+body)
	}))
	return c
}

// ask sends body to forward_to_NAME through c and returns the reply.
func (c *goClient) ask(t *testing.T, ctx context.Context, name, body string) string {
	t.Helper()
	if err := c.node.Send(ctx, routing.Route{c.hub, routing.LocalAddress(forwarding.StaticPrefix + name)}, body); err != nil {
		t.Fatal(err)
	}
	got, _, err := node.ReceiveBody[string](ctx, c.node)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestNamedForwarderHijack reproduces issue 10, finding 6: with static
// forwarding on, a second connection registering "printer" took the name
// and received the "secret document". Now it is refused, logged and
// counted, and the holder keeps the name; the holder may register again.
func TestNamedForwarderHijack(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  hub.Config
	}{
		{"static forwarding without tokens", hub.Config{StaticForwarding: true}},
		{"named forwarding, name without token", hub.Config{NamedForwarding: hub.NamedForwarding{Enabled: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, addr := hubtest.Start(t, tc.cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			owner, attacker := namedReceiver(t, ctx, addr, "owner"), namedReceiver(t, ctx, addr, "attacker")
			if _, err := forwarding.RegisterStatic(ctx, owner.node, routing.Route{owner.hub}, "printer", "", "echoer"); err != nil {
				t.Fatal(err)
			}
			_, err := forwarding.RegisterStatic(ctx, attacker.node, routing.Route{attacker.hub}, "printer", "", "echoer")
			if !errors.Is(err, forwarding.ErrRefused) || !errors.Is(err, forwarding.ErrNameInUse) {
				t.Fatalf("hijack: err = %v, want ErrRefused and ErrNameInUse", err)
			}
			sender := newGoClient(t, addr)
			if got := sender.ask(t, ctx, "printer", "secret document"); got != "owner:secret document" {
				t.Fatalf("the secret document went to %q", got)
			}
			if got := h.Stats().RefusedInUse; got != 1 {
				t.Fatalf("RefusedInUse = %d, want 1", got)
			}
			// The holder may register again, over the same connection.
			if _, err := forwarding.RegisterStatic(ctx, owner.node, routing.Route{owner.hub}, "printer", "", "echoer"); err != nil {
				t.Fatalf("holder re-registering: %v", err)
			}
			// Once the holder's connection has closed, the name is free.
			owner.tcp.Close()
			waitFor(t, 2*time.Second, "name released", func() bool { return h.Stats().Forwarders == 0 })
			if _, err := forwarding.RegisterStatic(ctx, attacker.node, routing.Route{attacker.hub}, "printer", "", "echoer"); err != nil {
				t.Fatalf("registering a free name: %v", err)
			}
		})
	}
}

// TestNamedForwardingTokens: per-node token hashes. A name with a token
// needs it; with it, its holder moves the name from a connection that has
// not closed yet (the reconnect case); without it, nobody takes it.
func TestNamedForwardingTokens(t *testing.T) {
	sum := sha256.Sum256([]byte("printer-token"))
	h, addr := hubtest.Start(t, hub.Config{
		// The operator-wide settings are overridden by the node's own.
		StaticForwarding: true, ForwarderToken: "operator-wide",
		NamedForwarding: hub.NamedForwarding{Enabled: true, TokenHashes: map[string][32]byte{"printer": sum}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	old, moved, attacker := namedReceiver(t, ctx, addr, "old"), namedReceiver(t, ctx, addr, "new"), namedReceiver(t, ctx, addr, "attacker")
	for _, token := range []string{"", "wrong", "operator-wide"} {
		if _, err := forwarding.RegisterStatic(ctx, old.node, routing.Route{old.hub}, "printer", token, "echoer"); !errors.Is(err, forwarding.ErrRefused) {
			t.Fatalf("token %q: err = %v, want ErrRefused", token, err)
		}
	}
	if got := h.Stats().RefusedUnauthorized; got != 3 {
		t.Fatalf("RefusedUnauthorized = %d, want 3", got)
	}
	if _, err := forwarding.RegisterStatic(ctx, old.node, routing.Route{old.hub}, "printer", "printer-token", "echoer"); err != nil {
		t.Fatal(err)
	}
	// A name without a token is open to anyone (while free).
	if _, err := forwarding.RegisterStatic(ctx, attacker.node, routing.Route{attacker.hub}, "scratch", "", "echoer"); err != nil {
		t.Fatalf("a name without a token: %v", err)
	}
	if _, err := forwarding.RegisterStatic(ctx, attacker.node, routing.Route{attacker.hub}, "printer", "", "echoer"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("hijack without the token: %v", err)
	}
	// The holder reconnects: its new connection carries the token and
	// takes the name although the old connection is still open.
	if _, err := forwarding.RegisterStatic(ctx, moved.node, routing.Route{moved.hub}, "printer", "printer-token", "echoer"); err != nil {
		t.Fatalf("moving with the token: %v", err)
	}
	sender := newGoClient(t, addr)
	if got := sender.ask(t, ctx, "printer", "doc"); got != "new:doc" {
		t.Fatalf("after the move got %q", got)
	}
	// The old connection closing does not take the name away.
	old.tcp.Close()
	waitFor(t, 2*time.Second, "old connection gone", func() bool { return h.Stats().TCP.Conns == 3 })
	if got := sender.ask(t, ctx, "printer", "doc"); got != "new:doc" {
		t.Fatalf("after the old connection closed got %q", got)
	}
}

// TestSetNamedForwarding: the settings change at run time. Enabling starts
// the service, new token hashes apply to the next registration, disabling
// stops the service and removes the names.
func TestSetNamedForwarding(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := namedReceiver(t, ctx, addr, "c")
	if h.Node().HasWorker(forwarding.StaticServiceAddress) {
		t.Fatal("static forwarding on by default")
	}
	h.SetNamedForwarding(hub.NamedForwarding{Enabled: true})
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "a", "", "echoer"); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("t"))
	h.SetNamedForwarding(hub.NamedForwarding{Enabled: true, TokenHashes: map[string][32]byte{"b": sum}})
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "b", "", "echoer"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("new token not applied: %v", err)
	}
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "b", "t", "echoer"); err != nil {
		t.Fatal(err)
	}
	if got := h.Stats().Forwarders; got != 2 {
		t.Fatalf("forwarders = %d, want 2", got)
	}
	h.SetNamedForwarding(hub.NamedForwarding{})
	if h.Node().HasWorker(forwarding.StaticServiceAddress) || h.Node().HasWorker(forwarding.StaticPrefix+"a") {
		t.Fatal("disabling left the service or a name running")
	}
	if s := h.Stats(); s.Forwarders != 0 || s.RefusedUnauthorized != 1 {
		t.Fatalf("after disabling: forwarders %d, refused %d; want 0 and 1 (kept)", s.Forwarders, s.RefusedUnauthorized)
	}
	h.Close()
	h.SetNamedForwarding(hub.NamedForwarding{Enabled: true}) // no effect, no panic
}

// TestMaintainRetriesNameInUse: a forwarder client whose name is still
// held by its previous connection keeps retrying, and gets the name once
// that connection has gone.
func TestMaintainRetriesNameInUse(t *testing.T) {
	_, addr := hubtest.Start(t, hub.Config{NamedForwarding: hub.NamedForwarding{Enabled: true}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	prev := namedReceiver(t, ctx, addr, "prev")
	if _, err := forwarding.RegisterStatic(ctx, prev.node, routing.Route{prev.hub}, "pi", "", "echoer"); err != nil {
		t.Fatal(err)
	}
	next := namedReceiver(t, ctx, addr, "next")
	refused := make(chan struct{}, 1)
	registered := make(chan routing.Route, 1)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- forwarding.Maintain(mctx, next.node, next.tcp, forwarding.MaintainConfig{
			Hub: addr, Destination: "echoer", Name: "pi",
			OnDisconnected: func(err error) {
				if errors.Is(err, forwarding.ErrNameInUse) {
					select {
					case refused <- struct{}{}:
					default:
					}
				}
			},
			OnRegistered: func(r routing.Route) { registered <- r },
		})
	}()
	select {
	case <-refused:
	case err := <-done:
		t.Fatalf("Maintain returned %v", err)
	case <-ctx.Done():
		t.Fatal("no refusal reported")
	}
	prev.tcp.Close()
	select {
	case <-registered:
	case <-ctx.Done():
		t.Fatal("Maintain did not get the name once it was free")
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Maintain = %v", err)
	}
}

// logCounter is a slog handler that counts records by message.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]int)
	}
	l.counts[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[msg]
}

// TestRefusedRegistrationsCounted: registrations beyond the per-connection
// cap (issue 10, finding 11, silently ignored before) are counted and
// logged, at most once a second whatever their number; refused names too.
func TestRefusedRegistrationsCounted(t *testing.T) {
	logs := &logCounter{}
	h, addr := hubtest.Start(t, hub.Config{MaxForwardersPerConn: 1, StaticForwarding: true, Logger: slog.New(logs)})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c := newGoClient(t, addr)
	if _, err := forwarding.Register(ctx, c.node, routing.Route{c.hub}, "x"); err != nil {
		t.Fatal(err)
	}
	// 50 more registrations over the same connection, without waiting for
	// replies that will not come (the 2021 service has no error reply).
	mb, err := c.node.OpenMailbox("")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	start := time.Now()
	for range 50 {
		if err := mb.Send(ctx, routing.Route{c.hub, routing.LocalAddress(forwarding.ServiceAddress)}, forwarding.RegisterPayload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "50 refusals counted", func() bool { return h.Stats().RefusedOverCap == 50 })
	// One line a second at most: 1 for the 50 here, unless the machine is
	// so slow that they spread over more seconds.
	if n, most := logs.count("forwarder registration refused: connection at its limit"), 1+int(time.Since(start)/time.Second); n < 1 || n > most {
		t.Fatalf("%d log lines for 50 refusals in %v, want 1 to %d", n, time.Since(start), most)
	}
	if got := h.Stats().Forwarders; got != 1 {
		t.Fatalf("forwarders = %d, want 1", got)
	}
	// A named registration beyond the cap (counted apart from random
	// forwarders) is refused with a reason.
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "n", "", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := forwarding.RegisterStatic(ctx, c.node, routing.Route{c.hub}, "m", "", "x"); !errors.Is(err, forwarding.ErrRefused) {
		t.Fatalf("named over the cap: %v", err)
	}
	if got := h.Stats().RefusedOverCap; got != 51 {
		t.Fatalf("RefusedOverCap = %d, want 51", got)
	}
	if logs.count("named forwarder registration refused") != 1 {
		t.Fatal("the refused name was not logged")
	}
}

// TestExactBytesHeartbeat: the December 2021 Rust heartbeat, frame
// 00 04 01 00 00 00, is dropped silently by the hub: counted as a
// heartbeat, neither unroutable nor a probe, nothing sent back, and the
// connection carries on byte for byte as before.
func TestExactBytesHeartbeat(t *testing.T) {
	logs := &logCounter{}
	h, addr := hubtest.Start(t, hub.Config{Logger: slog.New(logs)})
	hb := frames(t, "heartbeat")[0]
	if !bytes.Equal(hb, []byte{0x00, 0x04, 0x01, 0x00, 0x00, 0x00}) {
		t.Fatalf("vector %x", hb)
	}
	c := dialRaw(t, addr)
	for range 3 {
		c.write(hb)
	}
	c.write(frames(t, "frame-echo-request")[0])
	if got, want := c.readFrame(), frames(t, "frame-echo-reply")[0]; !bytes.Equal(got, want) {
		t.Fatalf("first frame after heartbeats\n%x\nwant the echo reply\n%x", got, want)
	}
	s := h.Stats()
	if s.TCP.Heartbeats != 3 || s.TCP.Unroutable != 0 || s.Node.Unroutable != 0 || s.TCP.ProbeDelayed != 0 || s.TCP.DecodeErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for msg, n := range logs.counts {
		if msg != "connection open" && msg != "connection closed" {
			t.Errorf("logged %q %d times", msg, n)
		}
	}
}

// probeFrame is a frame for a random 64-bit address, as a prober sends.
func probeFrame() []byte {
	m := routing.TransportMessage{Version: 1, Onward: routing.Route{routing.LocalAddress(node.RandomAddress(8)), routing.LocalAddress("x")}, Return: routing.Route{routing.LocalAddress("p")}, Payload: []byte{0}}
	body, _ := m.AppendBinary(nil) // local addresses always encode
	return append([]byte{byte(len(body) >> 8), byte(len(body))}, body...)
}

// expectClosedWithin asserts that the hub closes the connection within d,
// discarding what it reads meanwhile.
func (c *rawConn) expectClosedWithin(d time.Duration) {
	c.t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection not closed within %v", d)
	}
}

// TestProbeDampingDefaults reproduces issue 10, finding 5 (1.6 M probes/s
// to random aliases found a victim in 8.7 s) with the hub's defaults: the
// prober is slowed, then closed, and counted, after a few hundred probes
// of a 2^64 space; the victim's forwarder and a client that sends to a
// stale address now and then are not affected.
func TestProbeDampingDefaults(t *testing.T) {
	h, addr := hubtest.Start(t, hub.Config{})
	victim := dialRaw(t, addr)
	victim.write(frames(t, "capture-gs-11-responder-to-hub")[0])
	fwd := decode(t, victim.readFrame()).Return[0].Value
	if !hex16.MatchString(fwd) {
		t.Fatalf("forwarder address %q has not 64 random bits", fwd)
	}

	honest := dialRaw(t, addr)
	prober := dialRaw(t, addr)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := prober.Write(probeFrame()); err != nil {
				return
			}
		}
	}()
	// Meanwhile, the honest client sends to a forwarder that has gone now
	// and then, and keeps using the hub.
	stale := subAddr(frames(t, "capture-gs-11-initiator-to-hub")[0], "9d7cda36", "00112233445566aa")
	for i := range 30 {
		if i%3 == 0 {
			honest.write(stale)
		}
		honest.write(frames(t, "frame-echo-request")[0])
		if got, want := honest.readFrame(), frames(t, "frame-echo-reply")[0]; !bytes.Equal(got, want) {
			t.Fatalf("honest echo %d: %x", i, got)
		}
	}
	prober.expectClosedWithin(30 * time.Second)
	took := time.Since(start)
	s := h.Stats().TCP
	if s.ProbeClosed != 1 || s.ProbeDelayed != tcp.DefaultProbeStrikes {
		t.Fatalf("probe closed %d, delayed %d; want 1 and %d", s.ProbeClosed, s.ProbeDelayed, tcp.DefaultProbeStrikes)
	}
	if took < tcp.DefaultProbeStrikes*tcp.DefaultProbeDelay {
		t.Fatalf("closed after %v: not slowed first", took)
	}
	// Burst, what refilled meanwhile, the delayed ones, the honest
	// client's 10 stale messages.
	if limit := uint64(tcp.DefaultProbeBurst + tcp.DefaultProbeRate*took.Seconds() + tcp.DefaultProbeStrikes + 10 + 5); s.Unroutable > limit {
		t.Fatalf("%d messages to nonexistent addresses handled in %v, want at most %d", s.Unroutable, took, limit)
	}
	t.Logf("prober closed after %v and %d misses", took, s.Unroutable)
	// The victim's forwarder still works.
	init := dialRaw(t, addr)
	init.write(subAddr(frames(t, "capture-gs-11-initiator-to-hub")[0], "9d7cda36", fwd))
	if m := decode(t, victim.readFrame()); len(m.Return) != 2 {
		t.Fatalf("forwarded %v", m)
	}
	if got := h.Stats().TCP.ProbeClosed; got != 1 {
		t.Fatalf("the honest client was closed too (%d)", got)
	}
}
