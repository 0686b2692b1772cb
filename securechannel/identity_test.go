package securechannel_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

func TestParseIdentity(t *testing.T) {
	kp := newKeyPair(t)
	id := securechannel.IdentityOf(kp)
	text := id.String()
	if len(text) != 64 || strings.ToLower(text) != text {
		t.Fatalf("String() = %q, want 64 lowercase hex digits", text)
	}
	for _, tc := range []struct {
		in   string
		want securechannel.Identity
		err  bool
	}{
		{text, id, false},
		{strings.ToUpper(text), id, false},
		{"  " + text + "\n", id, false},
		{text[:63], securechannel.Identity{}, true},
		{text + "0", securechannel.Identity{}, true},
		{"zz" + text[2:], securechannel.Identity{}, true},
		{strings.Repeat("0", 64), securechannel.Identity{}, true},
		{"", securechannel.Identity{}, true},
	} {
		got, err := securechannel.ParseIdentity(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, securechannel.ErrIdentity) {
			t.Errorf("ParseIdentity(%q): %v does not wrap ErrIdentity", tc.in, err)
		}
	}
	var back securechannel.Identity
	if b, _ := id.MarshalText(); back.UnmarshalText(b) != nil || back != id {
		t.Error("text round trip failed")
	}
	if id.Key() != kp.Public || securechannel.IdentityFromKey(kp.Public) != id {
		t.Error("Identity and key disagree")
	}
}

func TestReadAllowFile(t *testing.T) {
	a, b := securechannel.IdentityOf(newKeyPair(t)), securechannel.IdentityOf(newKeyPair(t))
	dir := t.TempDir()
	good := filepath.Join(dir, "allow")
	os.WriteFile(good, []byte("# team\n"+a.String()+"  alice's laptop\n\n\t"+b.String()+"\n"), 0o644)
	ids, err := securechannel.ReadAllowFile(good)
	if err != nil || len(ids) != 2 || ids[0] != a || ids[1] != b {
		t.Fatalf("ReadAllowFile = %v, %v; want [%v %v]", ids, err, a, b)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte(a.String()+"\nnot-an-identity\n"), 0o644)
	if _, err := securechannel.ReadAllowFile(bad); !errors.Is(err, securechannel.ErrIdentity) || !strings.Contains(err.Error(), bad+":2") {
		t.Errorf("bad line: %v; want ErrIdentity naming %s:2", err, bad)
	}
	if _, err := securechannel.ReadAllowFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing allow file was accepted")
	}
}

// TestKnownPeers: the first identity seen for a name is recorded, the same
// one passes, a different one is refused with an error that says what
// changed and how to accept it; deleting the line accepts the new one.
func TestKnownPeers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_peers")
	kp := securechannel.OpenKnownPeers(path)
	a, b := securechannel.IdentityOf(newKeyPair(t)), securechannel.IdentityOf(newKeyPair(t))
	const route = "1#127.0.0.1:4000 => 0#abcd1234 => 0#secure_channel"

	first, err := kp.Check(route, a)
	if err != nil || !first {
		t.Fatalf("first use: %v, %v; want recorded", first, err)
	}
	if fi, err := os.Stat(path); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
		t.Errorf("known peers file: %v, want mode 0600", err)
	}
	if first, err := kp.Check(route, a); err != nil || first {
		t.Errorf("same identity again: %v, %v; want accepted, not first", first, err)
	}
	if first, err := kp.Check("1#other:1 => 0#x", b); err != nil || !first {
		t.Errorf("another route: %v, %v; want recorded", first, err)
	}
	_, err = kp.Check(route, b)
	var changed *securechannel.PeerChangedError
	if !errors.Is(err, securechannel.ErrPeerChanged) || !errors.As(err, &changed) {
		t.Fatalf("changed identity: %v; want ErrPeerChanged", err)
	}
	if changed.Known != a || changed.Got != b || changed.Line != 1 || changed.File != path {
		t.Errorf("PeerChangedError %+v", changed)
	}
	for _, want := range []string{a.String(), b.String(), route, path + ":1", "CHANGED", "delete line 1", "--peer " + b.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Accept deliberately: delete the line.
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(lines[1:], "")), 0o600)
	if first, err := kp.Check(route, b); err != nil || !first {
		t.Errorf("after deleting the line: %v, %v; want recorded", first, err)
	}
	if id, line, ok, err := kp.Lookup(route); err != nil || !ok || id != b || line != 2 {
		t.Errorf("Lookup = %v line %d, %v, %v; want %v on line 2", id, line, ok, err, b)
	}

	// A known-peers file others may write, or a link, is refused.
	if runtime.GOOS != "windows" {
		os.Chmod(path, 0o666)
		if _, err := kp.Check(route, b); !errors.Is(err, securechannel.ErrKeyPermissions) {
			t.Errorf("world-writable known peers: %v", err)
		}
		os.Chmod(path, 0o644) // readable is fine: no secret in it
		if _, err := kp.Check(route, b); err != nil {
			t.Errorf("mode 0644 known peers: %v", err)
		}
		link := filepath.Join(t.TempDir(), "link")
		os.Symlink(path, link)
		if _, err := securechannel.OpenKnownPeers(link).Check(route, b); !errors.Is(err, securechannel.ErrKeyPermissions) {
			t.Errorf("known peers through a link: %v", err)
		}
	}
}

// TestPeerPolicyRequired: no API hands out an unauthenticated channel
// without being asked (issue 13).
func TestPeerPolicyRequired(t *testing.T) {
	n := newNode(t)
	if _, err := securechannel.Listen(t.Context(), n, "l1", securechannel.ListenerConfig{}); !errors.Is(err, securechannel.ErrNoPeerPolicy) {
		t.Errorf("Listen without a policy: %v; want ErrNoPeerPolicy", err)
	}
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true})
	if _, err := securechannel.Create(t.Context(), n, routing.Route{l.Address()}, securechannel.Config{}); !errors.Is(err, securechannel.ErrNoPeerPolicy) {
		t.Errorf("Create without a policy: %v; want ErrNoPeerPolicy", err)
	}
	pinned := create(t, n, routing.Route{l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	any := create(t, n, routing.Route{l.Address()}, securechannel.Config{InsecureAcceptAnyPeer: true})
	if !pinned.Authenticated() || any.Authenticated() {
		t.Errorf("Authenticated: pinned %v, any %v; want true, false", pinned.Authenticated(), any.Authenticated())
	}
	if pinned.PeerIdentity() != l.Identity() {
		t.Errorf("PeerIdentity %v, want %v", pinned.PeerIdentity(), l.Identity())
	}
}

// TestVerifyPeerKnownPeers: trust on first use through Config.VerifyPeer:
// the first listener is recorded, a listener with another key at the same
// name is refused quickly (RefusedPeerWait), with the change in the error.
func TestVerifyPeerKnownPeers(t *testing.T) {
	n := newNode(t)
	known := securechannel.OpenKnownPeers(filepath.Join(t.TempDir(), "known"))
	l1 := listen(t, n, "first", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	cfg := securechannel.Config{VerifyPeer: known.Verifier("the-listener"), RefusedPeerWait: 100 * time.Millisecond}
	ch := create(t, n, routing.Route{l1.Address()}, cfg)
	if got, _ := roundTrip(t, n, ch, "first"); got != "first" {
		t.Fatalf("reply %q", got)
	}
	create(t, n, routing.Route{l1.Address()}, cfg) // the same identity again

	l2 := listen(t, n, "second", securechannel.ListenerConfig{AcceptAnyInitiator: true})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := securechannel.Create(ctx, n, routing.Route{l2.Address()}, cfg)
	if !errors.Is(err, securechannel.ErrPeerChanged) || !errors.Is(err, securechannel.ErrUnauthorizedPeer) {
		t.Fatalf("changed listener: %v; want ErrPeerChanged and ErrUnauthorizedPeer", err)
	}
	if !strings.Contains(err.Error(), l2.Identity().String()) || !strings.Contains(err.Error(), l1.Identity().String()) {
		t.Errorf("error %q does not name both identities", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Create waited for ctx (%v) instead of RefusedPeerWait", time.Since(start))
	}
}

// TestAllowListRefusalLogged: initiators not on the allow-list are refused,
// counted, and logged at most once a second, with the refused identity.
func TestAllowListRefusalLogged(t *testing.T) {
	n := newNode(t)
	var logs syncBuffer
	allowed := newKeyPair(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{
		Authorized: securechannel.AllowIdentities(securechannel.IdentityOf(allowed)),
		Logger:     slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	stranger := newKeyPair(t)
	const tries = 20
	for range tries {
		ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{StaticKeyPair: stranger, ExpectedPeerStatic: l.StaticPublic()})
		if ch.Authenticated() != true {
			t.Fatal("pinned channel not authenticated")
		}
	}
	eventually(t, "the refusals to be counted", func() bool { return l.Stats().Unauthorized == tries })
	if est, _ := l.Counts(); est != 0 {
		t.Errorf("%d refused channels established", est)
	}
	out := logs.String()
	if c := strings.Count(out, "refused an initiator"); c < 1 || c > 3 {
		t.Errorf("%d refusal log lines for %d refusals, want 1 (rate-limited):\n%s", c, tries, out)
	}
	if !strings.Contains(out, securechannel.IdentityOf(stranger).String()) {
		t.Errorf("the log does not name the refused identity:\n%s", out)
	}
	good := create(t, n, routing.Route{l.Address()}, securechannel.Config{StaticKeyPair: allowed, ExpectedPeerStatic: l.StaticPublic()})
	if got, _ := roundTrip(t, n, good, "ok"); got != "ok" {
		t.Errorf("allowed initiator: reply %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// junkFirstMessage returns a well-formed listener message with a fresh
// ephemeral key, as an attacker who never finishes the handshake sends.
func junkFirstMessage(t *testing.T) []byte {
	t.Helper()
	hs, err := noise.NewHandshake(noise.Config{Initiator: true, StaticKeyPair: newKeyPair(t)})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := hs.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0, 32}, m1...)
}

// TestSlotExhaustion is the attack of issue 13: 256 first messages that are
// never followed by M3 held every handshake slot of the listener for 20 s,
// so a genuine initiator timed out. Now the flood's source only displaces
// its own half-open handshakes, and a genuine initiator from elsewhere
// completes at once, even while the flood goes on.
func TestSlotExhaustion(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, HandshakeTimeout: time.Minute})
	// The attacker's messages all come through one hop (its connection);
	// the genuine initiator's through another.
	attackerHop := startTap(t, n, "attacker_conn")
	genuineHop := startTap(t, n, "genuine_conn")
	flood := func(count int) {
		for range count {
			sendRaw(t, n, routing.Route{attackerHop.addr, l.Address()}, junkFirstMessage(t))
		}
	}
	flood(securechannel.DefaultMaxPendingHandshakes)
	eventually(t, "the flood to be handled", func() bool {
		st := l.Stats()
		return st.Overloaded == uint64(securechannel.DefaultMaxPendingHandshakes-securechannel.DefaultMaxPendingPerSource)
	})
	if _, pending := l.Counts(); pending != securechannel.DefaultMaxPendingPerSource {
		t.Errorf("%d pending handshakes, want the per-source quota %d", pending, securechannel.DefaultMaxPendingPerSource)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the flood goes on during the genuine handshake
		for {
			select {
			case <-stop:
				return
			default:
				flood(1)
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ch, err := securechannel.Create(ctx, n, routing.Route{genuineHop.addr, l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("genuine initiator during the flood: %v", err)
	}
	defer ch.Close()
	if got, _ := roundTrip(t, n, ch, "through"); got != "through" {
		t.Errorf("reply %q", got)
	}
}

// TestSlotExhaustionManySources: when many sources fill every slot, the
// fullest source gives way, so a new genuine initiator still gets one.
func TestSlotExhaustionManySources(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, HandshakeTimeout: time.Minute, MaxPendingHandshakes: 32, MaxPendingPerSource: 8})
	for i := range 4 {
		hop := startTap(t, n, "attacker"+string(rune('a'+i)))
		for range 8 {
			sendRaw(t, n, routing.Route{hop.addr, l.Address()}, junkFirstMessage(t))
		}
	}
	eventually(t, "every slot to be taken", func() bool { _, p := l.Counts(); return p == 32 })
	genuine := startTap(t, n, "genuine")
	ch := create(t, n, routing.Route{genuine.addr, l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
	if got, _ := roundTrip(t, n, ch, "in"); got != "in" {
		t.Errorf("reply %q", got)
	}
	if st := l.Stats(); st.Overloaded != 1 {
		t.Errorf("Overloaded %d, want 1 (one junk handshake displaced)", st.Overloaded)
	}
}

// TestAbandonedChannelsReaped is the second resource attack of issue 13:
// 2,000 channels opened and abandoned left 2,000 goroutines and workers on
// the listener's node for ever. With an idle timeout they are all reaped.
func TestAbandonedChannelsReaped(t *testing.T) {
	const count = 2000
	server := newNode(t)
	l := listen(t, server, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, IdleTimeout: 300 * time.Millisecond})
	workersBefore := server.Stats().Workers
	goroutinesBefore := runtime.NumGoroutine()
	chans := make([]*securechannel.Channel, 0, count)
	for range count {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ch, err := securechannel.Create(ctx, server, routing.Route{l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	// The initiators go away without a word, as a 2021 peer does.
	for _, ch := range chans {
		ch.Close()
	}
	// Each responder ends idle, or, if the initiators ran more than
	// MaxPendingPerSource handshakes ahead of it, displaced before its M3.
	eventually(t, "every abandoned responder to be reaped", func() bool {
		est, pending := l.Counts()
		st := l.Stats()
		return est == 0 && pending == 0 && st.IdleTimeouts+st.Overloaded == count
	})
	eventually(t, "the workers and goroutines to go", func() bool {
		return server.Stats().Workers == workersBefore && runtime.NumGoroutine() <= goroutinesBefore+10
	})
}

// TestMaxChannels: at the cap, a new channel displaces the least recently
// active one, never a busy one.
func TestMaxChannels(t *testing.T) {
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, MaxChannels: 3})
	cfg := securechannel.Config{ExpectedPeerStatic: l.StaticPublic()}
	idle := create(t, n, routing.Route{l.Address()}, cfg)
	busy1 := create(t, n, routing.Route{l.Address()}, cfg)
	busy2 := create(t, n, routing.Route{l.Address()}, cfg)
	roundTrip(t, n, busy1, "a")
	roundTrip(t, n, busy2, "b")
	_ = idle
	fresh := create(t, n, routing.Route{l.Address()}, cfg)
	eventually(t, "the idle channel to be evicted", func() bool {
		est, _ := l.Counts()
		return l.Stats().Evicted == 1 && est == 3
	})
	for _, ch := range []*securechannel.Channel{busy1, busy2, fresh} {
		if got, _ := roundTrip(t, n, ch, "still"); got != "still" {
			t.Errorf("reply %q", got)
		}
	}
}

// TestSlotExhaustionForgedSources: everything in a return route after the
// hops that prepended themselves is chosen by the sender, so one attacker
// behind one connection (one hub alias) can make every first message look
// like a new source. Each then held one slot, the fullest "source" was a
// tie, and the flood displaced the genuine initiator's half-open handshake
// at random. Sources are now compared hop by hop from the listener's side:
// the attacker's connection holds the most, so it pays.
func TestSlotExhaustionForgedSources(t *testing.T) {
	const slots = 32
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, HandshakeTimeout: time.Minute,
		MaxPendingHandshakes: slots, MaxPendingPerSource: 8})
	attackerHop := startTap(t, n, "attacker_conn")
	genuineHop := startTap(t, n, "genuine_conn")
	forged := 0
	flood := func(count int) {
		for range count {
			forged++
			fake := routing.LocalAddress(fmt.Sprintf("forged%d", forged))
			err := n.Route(t.Context(), routing.TransportMessage{Version: routing.Version,
				Onward: routing.Route{attackerHop.addr, l.Address()}, Return: routing.Route{fake, routing.LocalAddress("x")},
				Payload: junkFirstMessage(t)})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	flood(slots)
	eventually(t, "every slot to be taken", func() bool { _, p := l.Counts(); return p == slots })

	// The genuine initiator's M3 is held at its hop until the flood is over.
	held := make(chan routing.TransportMessage, 1)
	genuineHop.setEdit(func(i int, tm routing.TransportMessage) []routing.TransportMessage {
		if i == 2 { // M1, M2, then M3
			held <- tm
			return nil
		}
		return []routing.TransportMessage{tm}
	})
	type result struct {
		ch  *securechannel.Channel
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		ch, err := securechannel.Create(ctx, n, routing.Route{genuineHop.addr, l.Address()}, securechannel.Config{ExpectedPeerStatic: l.StaticPublic()})
		done <- result{ch, err}
	}()
	m3 := <-held
	before := l.Stats().Overloaded
	flood(8 * slots)
	eventually(t, "the flood to be handled", func() bool { return l.Stats().Overloaded == before+8*slots })
	if err := n.Route(t.Context(), m3); err != nil {
		t.Fatalf("the genuine responder was displaced by the flood: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("the genuine handshake did not survive the flood: %v", r.err)
	}
	defer r.ch.Close()
	if got, _ := roundTrip(t, n, r.ch, "survived"); got != "survived" {
		t.Errorf("reply %q", got)
	}
}

// TestKnownPeersConcurrentFirstUse: several programs (here, separate
// KnownPeers values, which share no lock) meet a route for the first time
// at once, each seeing another identity, as when an attacker races the
// genuine responder. The check and the record are one step under a file
// lock: exactly one identity is recorded, and every other is refused as a
// change, never also accepted as a "first use".
func TestKnownPeersConcurrentFirstUse(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no file lock on Windows")
	}
	path := filepath.Join(t.TempDir(), "known_peers")
	const route, writers = "1#127.0.0.1:4000 => 0#abcd => 0#secure_channel", 16
	var firsts, changed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range writers {
		id := securechannel.IdentityOf(newKeyPair(t))
		wg.Go(func() {
			<-start
			first, err := securechannel.OpenKnownPeers(path).Check(route, id)
			switch {
			case err == nil && first:
				firsts.Add(1)
			case errors.Is(err, securechannel.ErrPeerChanged):
				changed.Add(1)
			default:
				t.Errorf("Check: first %v, err %v", first, err)
			}
		})
	}
	close(start)
	wg.Wait()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if firsts.Load() != 1 || changed.Load() != writers-1 || strings.Count(string(data), "\n") != 1 {
		t.Errorf("%d first uses, %d changes, file %q; want 1, %d and one line", firsts.Load(), changed.Load(), data, writers-1)
	}
}

// TestKnownPeersTabSeparated: a line written by hand with a tab between
// the identity and the route still pins it; it was ignored, so the next
// identity seen was accepted as a first use.
func TestKnownPeersTabSeparated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_peers")
	a, b := securechannel.IdentityOf(newKeyPair(t)), securechannel.IdentityOf(newKeyPair(t))
	const route = "1#127.0.0.1:4000 => 0#abcd => 0#secure_channel"
	if err := os.WriteFile(path, []byte("# pinned by hand\n"+a.String()+"\t"+route+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := securechannel.OpenKnownPeers(path).Check(route, b); !errors.Is(err, securechannel.ErrPeerChanged) {
		t.Errorf("another identity for a tab-separated record: %v; want ErrPeerChanged", err)
	}
}

// TestMaxChannelsFairEviction: at the cap, an initiator that opens channel
// after channel through one connection displaced every idle channel of
// everyone else (the least recently active went first). Now the source
// holding the most channels gives way, hop by hop as for pending
// handshakes, so it displaces only its own.
func TestMaxChannelsFairEviction(t *testing.T) {
	const limit = 4
	n := newNode(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{AcceptAnyInitiator: true, MaxChannels: limit})
	cfg := securechannel.Config{ExpectedPeerStatic: l.StaticPublic()}
	genuineHop := startTap(t, n, "genuine_conn")
	attackerHop := startTap(t, n, "attacker_conn")
	genuine := create(t, n, routing.Route{genuineHop.addr, l.Address()}, cfg)
	roundTrip(t, n, genuine, "before")
	// The attacker's channels are all newer and busier than the genuine one.
	for i := range 3 * limit {
		ch := create(t, n, routing.Route{attackerHop.addr, l.Address()}, cfg)
		roundTrip(t, n, ch, "busy")
		eventually(t, "the cap to hold", func() bool {
			est, _ := l.Counts()
			return est == min(i+2, limit)
		})
	}
	if got, _ := roundTrip(t, n, genuine, "after"); got != "after" {
		t.Errorf("reply %q", got)
	}
	if ev := l.Stats().Evicted; ev != 2*limit+1 {
		t.Errorf("Evicted %d, want %d (only the attacker's own channels)", ev, 2*limit+1)
	}
}

// TestListenerPrintsNoSecret: a Listener keeps its static key pair in
// unexported fields, which fmt prints field by field without asking the
// key pair to redact itself: %+v of a listener printed its private key.
// Printing a Channel read its fields by reflection while its worker wrote
// them (a data race under -race).
func TestListenerPrintsNoSecret(t *testing.T) {
	n := newNode(t)
	kp := newKeyPair(t)
	l := listen(t, n, listenerName, securechannel.ListenerConfig{StaticKeyPair: kp, AcceptAnyInitiator: true})
	ch := create(t, n, routing.Route{l.Address()}, securechannel.Config{StaticKeyPair: kp, ExpectedPeerStatic: l.StaticPublic()})
	secretDec := strings.Trim(fmt.Sprint(kp.Private[:4]), "[]")
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("l", "listener", l, "channel", ch)
	outputs := map[string]string{"slog": logged.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x", "%d"} {
		outputs[verb] = fmt.Sprintf(verb, l)
		outputs[verb+" channel"] = fmt.Sprintf(verb, ch)
	}
	for what, out := range outputs {
		if strings.Contains(strings.ToLower(out), hex.EncodeToString(kp.Private[:])) || strings.Contains(out, secretDec) {
			t.Errorf("%s of a listener or channel prints the private key: %.300s", what, out)
		}
	}
}

// TestKnownPeersNameInjection: a name is one line's key; a name that would
// write a second line (a forged record for another route), or could never
// be found again, is refused before anything is written.
func TestKnownPeersNameInjection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_peers")
	kp := securechannel.OpenKnownPeers(path)
	a, evil := securechannel.IdentityOf(newKeyPair(t)), securechannel.IdentityOf(newKeyPair(t))
	for _, name := range []string{
		"1#a:1 => 0#x\n" + evil.String() + " 1#bank:443 => 0#secure_channel",
		"1#a:1 => 0#x\r" + evil.String() + " 1#bank:443",
		" 1#a:1 => 0#x",
		"1#a:1 => 0#x ",
		"",
	} {
		if first, err := kp.Check(name, a); err == nil || first {
			t.Errorf("Check(%q) = %v, %v; want refused", name, first, err)
		}
	}
	if b, err := os.ReadFile(path); err == nil && len(b) != 0 {
		t.Errorf("known peers written: %q", b)
	}
	if _, _, ok, err := kp.Lookup("1#bank:443 => 0#secure_channel"); ok || err != nil {
		t.Errorf("a record was injected: %v, %v", ok, err)
	}
}
