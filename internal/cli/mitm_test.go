package cli_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/internal/cli"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// scListener runs "secure-channel listen" with args until the test ends and
// returns the identity and forwarding address it printed.
func scListener(t *testing.T, hubAddr string, args ...string) (identity, fwd string, stderr *scBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr = new(scBuffer)
	exited := make(chan int, 1)
	go func() {
		exited <- cli.Main(ctx, append([]string{"secure-channel", "listen", "--hub", hubAddr, "--log-format", "text"}, args...), pw, stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("listen exited %d; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("listen did not stop")
		}
	})
	lines := bufio.NewScanner(pr)
	var got []string
	for len(got) < 2 && lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) < 2 {
		t.Fatalf("listen printed %q; stderr:\n%s", got, stderr.String())
	}
	id := scIdentityLine.FindStringSubmatch(got[0])
	m := scForwardingLine.FindStringSubmatch(got[1])
	if id == nil || m == nil {
		t.Fatalf("listen printed %q, want identity: and forwarding address: lines", got)
	}
	go io.Copy(io.Discard, pr)
	return id[1], m[1], stderr
}

// send runs "ockamhub send" and returns its exit code and output.
func send(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb scBuffer
	code = cli.Main(t.Context(), append([]string{"send"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// proxy is a TCP relay that passes bytes through unchanged: the honest
// path in front of the hub.
func proxy(t *testing.T, ln net.Listener, to string) (stop func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Go(func() { io.Copy(u, c); u.Close() })
			wg.Go(func() { io.Copy(c, u); c.Close() })
		}
	})
	return func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}

// mitmRelay is the attacker of issue 13, in process, between two real TCP
// connections: it takes the hub's place at its address, answers the
// initiator's M1 with its own listener (its own key), decrypts what the
// initiator sends, logs it, and re-originates it over a second channel to
// the genuine listener through the real hub, relaying the reply back.
type mitmRelay struct {
	n        *node.Node
	tr       *tcp.Transport
	listener *securechannel.Listener

	mu        sync.Mutex
	plaintext []string
}

func startMITM(t *testing.T, ln net.Listener, hubAddr, alias string) *mitmRelay {
	t.Helper()
	ctx := t.Context()
	r := &mitmRelay{n: node.New(node.Config{})}
	t.Cleanup(func() { r.n.Close() })
	tr, err := tcp.New(r.n, tcp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r.tr = tr
	t.Cleanup(func() { tr.Close() })
	go tr.Serve(ln)
	// Its own listener, with its own key: the initiator's M1 lands here.
	if r.listener, err = securechannel.Listen(ctx, r.n, "mitm_listener", securechannel.ListenerConfig{AcceptAnyInitiator: true}); err != nil {
		t.Fatal(err)
	}
	// Messages for 0#ALIAS => secure_channel arrive here, as at the hub's
	// forwarder: hand them to the attacker's listener instead.
	err = r.n.StartWorker(ctx, alias, node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		return s.Forward(ctx, routing.TransportMessage{Version: routing.Version,
			Onward: routing.Route{r.listener.Address()}, Return: m.Return(), Payload: m.Payload()})
	}))
	if err != nil {
		t.Fatal(err)
	}
	// What the initiator sends through its channel arrives decrypted at
	// echo_service on the relay: log it, re-originate it to the genuine
	// listener, and pass the reply back.
	hub, err := tr.Connect(ctx, hubAddr)
	if err != nil {
		t.Fatal(err)
	}
	genuineRoute := routing.Route{hub, routing.LocalAddress(alias), routing.LocalAddress("secure_channel")}
	err = r.n.StartWorker(ctx, "echo_service", node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		text, err := node.Body[string](m)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.plaintext = append(r.plaintext, text)
		r.mu.Unlock()
		go func() { // not on the worker's goroutine: it waits for a reply
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ch, err := securechannel.Create(ctx, r.n, genuineRoute, securechannel.Config{InsecureAcceptAnyPeer: true})
			if err != nil {
				return
			}
			defer ch.Close()
			mb, err := r.n.OpenMailbox("")
			if err != nil {
				return
			}
			defer mb.Close()
			if mb.Send(ctx, routing.Route{ch.Address(), routing.LocalAddress("echo_service")}, text) != nil {
				return
			}
			reply, err := mb.Receive(ctx)
			if err != nil {
				return
			}
			if body, err := node.Body[string](reply); err == nil {
				r.n.Send(ctx, m.Return(), body)
			}
		}()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *mitmRelay) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.plaintext...)
}

// TestSecureSendMITM is the relay attack of issue 13 with the real commands
// and real TCP connections on 127.0.0.1: a relay at the address the user
// believes is the hub terminates the secure channel with its own key and
// re-originates it to the genuine listener. With the listener's identity
// pinned (--peer) or recorded earlier in known peers, "send --secure" fails
// with an error that says so, and the relay learns nothing; only with
// --insecure-accept-any-peer does the message go through, with a warning
// that the channel is unauthenticated, and the relay reads it.
func TestSecureSendMITM(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, hubAddr := hubtest.Start(t, hub.Config{})
	dir := t.TempDir()
	identity, fwd, _ := scListener(t, hubAddr, "--key", filepath.Join(dir, "listener.key"))
	alias := strings.TrimPrefix(fwd[strings.LastIndex(fwd, " ")+1:], "0#")
	clientKey, known := filepath.Join(dir, "client.key"), filepath.Join(dir, "known_peers")

	// The path the user knows: 127.0.0.1:PORT, honest for now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := ln.Addr().String()
	route := "1#" + relayAddr + " => 0#" + alias + " => secure_channel"
	stopProxy := proxy(t, ln, hubAddr)
	code, out, errOut := send(t, "--secure", "--key", clientKey, "--known-peers", known, "--route", route, "first contact")
	stopProxy()
	if code != 0 || out != "first contact\n" || !strings.Contains(errOut, "recorded the identity "+identity) {
		t.Fatalf("honest first use: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// The same address now answers with the attacker's relay.
	ln, err = net.Listen("tcp", relayAddr)
	if err != nil {
		t.Fatal(err)
	}
	relay := startMITM(t, ln, hubAddr, alias)

	const secret = "my secret password"
	t.Run("recorded", func(t *testing.T) {
		code, out, errOut := send(t, "--secure", "--key", clientKey, "--known-peers", known, "--route", route, secret)
		if code != 1 || out != "" {
			t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
		}
		for _, want := range []string{"CHANGED", identity, relay.listener.Identity().String(), known + ":1"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q does not say %q", errOut, want)
			}
		}
	})
	t.Run("pinned", func(t *testing.T) {
		code, out, errOut := send(t, "--secure", "--key", clientKey, "--peer", identity, "--route", route, secret)
		if code != 1 || out != "" || !strings.Contains(errOut, "not the pinned identity "+identity) {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and a pin mismatch", code, out, errOut)
		}
	})
	if got := relay.seen(); len(got) != 0 {
		t.Fatalf("the relay read %q from pinned or recorded channels", got)
	}
	if st := relay.listener.Stats(); st.Handshakes != 0 || st.Received != 0 {
		t.Errorf("the relay completed handshakes or decrypted data: %+v", st)
	}

	t.Run("insecure", func(t *testing.T) {
		code, out, errOut := send(t, "--secure", "--insecure-accept-any-peer", "--key", clientKey, "--route", route, secret)
		if code != 0 || out != secret+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want the echo", code, out, errOut)
		}
		if !strings.Contains(errOut, "NOT authenticated") {
			t.Errorf("stderr %q does not warn that the channel is unauthenticated", errOut)
		}
		// The attack is real: without a check, the relay read the secret.
		if got := relay.seen(); len(got) != 1 || got[0] != secret {
			t.Errorf("the relay saw %q, want the secret (the attack works when nothing is checked)", got)
		}
	})
	if b, err := os.ReadFile(known); err != nil || strings.Count(string(b), "\n") != 1 {
		t.Errorf("known peers changed: %q, %v", b, err)
	}
}

// TestSecureChannelCLIAllowList: a listener started with --allow or
// --allow-file admits only those initiators (identified by their --key);
// others are refused, counted and logged, and their message goes nowhere.
func TestSecureChannelCLIAllowList(t *testing.T) {
	_, hubAddr := hubtest.Start(t, hub.Config{})
	dir := t.TempDir()
	keyA, keyB, keyC := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key"), filepath.Join(dir, "c.key")
	ids := map[string]string{}
	for _, k := range []string{keyA, keyB, keyC} {
		var out, errb scBuffer
		if code := cli.Main(t.Context(), []string{"secure-channel", "identity", "--key", k}, &out, &errb); code != 0 {
			t.Fatalf("identity: exit %d: %s", code, errb.String())
		}
		m := scIdentityLine.FindStringSubmatch(strings.TrimSuffix(out.String(), "\n"))
		if m == nil {
			t.Fatalf("identity printed %q", out.String())
		}
		ids[k] = m[1]
	}
	allowFile := filepath.Join(dir, "allow")
	if err := os.WriteFile(allowFile, []byte("# bob\n"+ids[keyB]+" bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	identity, fwd, logs := scListener(t, hubAddr, "--key", filepath.Join(dir, "listener.key"), "--allow", ids[keyA], "--allow-file", allowFile)
	route := fwd + " => secure_channel"
	for _, k := range []string{keyA, keyB} {
		if code, out, errOut := send(t, "--secure", "--key", k, "--peer", identity, "--route", route, "member"); code != 0 || out != "member\n" {
			t.Errorf("allowed %s: exit %d, stdout %q, stderr %q", filepath.Base(k), code, out, errOut)
		}
	}
	code, out, errOut := send(t, "--secure", "--key", keyC, "--peer", identity, "--timeout", "1s", "--route", route, "stranger")
	if code != 1 || out != "" || !strings.Contains(errOut, "--allow your identity "+ids[keyC]) {
		t.Errorf("refused initiator: exit %d, stdout %q, stderr %q; want 1, no reply and a hint naming its identity", code, out, errOut)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "refused an initiator") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "refused an initiator") || !strings.Contains(l, ids[keyC]) {
		t.Errorf("the listener did not log the refusal of %s:\n%s", ids[keyC], l)
	}
}

// TestSecureChannelCLIIdentityPersists: the listener's identity is kept in
// --key across restarts, and "secure-channel identity" prints the same.
func TestSecureChannelCLIIdentityPersists(t *testing.T) {
	_, hubAddr := hubtest.Start(t, hub.Config{})
	key := filepath.Join(t.TempDir(), "listener.key")
	first, _, _ := scListener(t, hubAddr, "--key", key)
	second, _, _ := scListener(t, hubAddr, "--key", key) // a restart, sharing the file
	var out, errb scBuffer
	code := cli.Main(t.Context(), []string{"secure-channel", "identity", "--key", key}, &out, &errb)
	if first != second || code != 0 || out.String() != "identity: "+first+"\n" {
		t.Errorf("identities %s, %s, and %q (exit %d, %s); want one", first, second, out.String(), code, errb.String())
	}
}

// injectingProxy relays TCP bytes frame by frame between the client and the
// hub, and writes one forged plaintext frame to the client, addressed to its
// "app" mailbox, just before it relays the client's dataFrame-th frame (the
// first data message, after M1 and M3): a hub or relay that cannot read the
// channel tries to answer in its place. Hub-to-client frames are held back
// while the forgery is written, so it always arrives first.
func injectingProxy(t *testing.T, ln net.Listener, to string, dataFrame int, forged string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			var toClient sync.Mutex
			wg.Go(func() { // client -> hub
				defer u.Close()
				r := bufio.NewReader(c)
				for i := 1; ; i++ {
					body, err := tcp.ReadFrame(r, 0)
					if err != nil {
						return
					}
					if i == dataFrame {
						fake := routing.TransportMessage{Version: routing.Version,
							Onward:  routing.Route{routing.LocalAddress(node.AppAddress)},
							Return:  routing.Route{routing.LocalAddress("forger")},
							Payload: bare.AppendString(nil, forged)}
						frame, err := tcp.AppendFrame(nil, &fake, 0)
						if err != nil {
							t.Error(err)
							return
						}
						toClient.Lock()
						c.Write(frame)
						toClient.Unlock()
					}
					if _, err := u.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)); err != nil {
						return
					}
				}
			})
			wg.Go(func() { // hub -> client
				defer c.Close()
				r := bufio.NewReader(u)
				for {
					body, err := tcp.ReadFrame(r, 0)
					if err != nil {
						return
					}
					toClient.Lock()
					_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...))
					toClient.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// TestSecureSendForgedReply: a hub or relay on the route cannot read a
// pinned channel, but it can write a plaintext frame to the client's "app"
// mailbox. "send --secure" printed that forgery as the listener's reply and
// exited 0; it must take only a reply that came out of the channel.
func TestSecureSendForgedReply(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	_, hubAddr := hubtest.Start(t, hub.Config{})
	dir := t.TempDir()
	identity, fwd, _ := scListener(t, hubAddr, "--key", filepath.Join(dir, "listener.key"))
	alias := strings.TrimPrefix(fwd[strings.LastIndex(fwd, " ")+1:], "0#")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	injectingProxy(t, ln, hubAddr, 3, "forged by the relay")
	route := "1#" + ln.Addr().String() + " => 0#" + alias + " => secure_channel"
	code, out, errOut := send(t, "--secure", "--key", filepath.Join(dir, "client.key"), "--peer", identity, "--route", route, "genuine")
	if code != 0 || out != "genuine\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the reply from the channel, not the forgery", code, out, errOut)
	}
}
