package cli

import (
	"context"
	"flag"
	"fmt"
	"net"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/echo"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

// secureChannelListener is the listener's address, as in the Rust example 12.
const secureChannelListener = "secure_channel"

const secureChannelUsage = `Usage: ockamhub secure-channel COMMAND [flags]

Commands:
  listen    run a secure channel listener and echo_service behind a hub forwarder
  identity  print this side's identity (the public key of --key), creating the key if missing

Run 'ockamhub secure-channel COMMAND --help' for a command's flags.`

func runSecureChannel(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want a command: listen or identity")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stderr, secureChannelUsage)
		return flag.ErrHelp
	case "listen":
		return runSecureChannelListen(ctx, e, args[1:])
	case "identity":
		return runSecureChannelIdentity(e, args[1:])
	}
	return usagef("unknown command %q; want listen or identity", args[0])
}

func runSecureChannelIdentity(e *env, args []string) error {
	fs := e.flagSet("secure-channel identity", "[--key FILE]", `Prints the identity of the key in FILE (the default identity file without
--key), creating the key first if the file does not exist:
  identity: IDENTITY
IDENTITY is what a listener's --allow admits, and what "send --secure" and
portal inlets present with the same --key.`)
	key := fs.String("key", "", "key `file` (default "+defaultPathHelp(securechannel.DefaultKeyFile)+")")
	setupLog := e.logFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	setupLog()
	kp, err := loadKeyFlag(e, *key)
	if err != nil {
		return err
	}
	printIdentity(e, securechannel.IdentityOf(kp))
	return nil
}

func runSecureChannelListen(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("secure-channel listen", "--hub HOST:PORT [--key FILE] [--allow IDENTITY]... [flags]", `Runs a secure channel listener at "secure_channel" with an echo_service
behind it, on a node that connects to the hub and registers a forwarder for
the listener with the hub's forwarding_service (docs/protocol.md §4). Prints
  identity: IDENTITY
  forwarding address: 1#HOST:PORT => 0#ALIAS
then serves until stopped. IDENTITY is the listener's static public key (64
hex digits), kept in --key across restarts. Give it to the people who send,
by a channel you trust, and have them pin it:
  ockamhub send --secure --peer IDENTITY --route "1#HOST:PORT => 0#ALIAS => secure_channel" hi
The hub then relays only ciphertext, and a hub or relay that answers in the
listener's place is refused. Without --allow/--allow-file any initiator may
open a channel (the 2021 Rust programs need this); with them only the listed
identities (each initiator's own --key) are admitted, and refusals are
counted and logged.`)
	hubAddr := fs.String("hub", "", "the hub's HOST:PORT (required)")
	lf := addListenerFlags(fs)
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *hubAddr == "" {
		return usagef("--hub is required")
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if _, _, err := net.SplitHostPort(*hubAddr); err != nil {
		return usagef("bad --hub %q: want HOST:PORT", *hubAddr)
	}
	setupLog()
	cfg, err := lf.config(e)
	if err != nil {
		return err
	}
	c, err := newClient(e, 0) // it only connects to a hub
	if err != nil {
		return err
	}
	defer c.Close()
	// Not inline: echo replies to the responder's address_local, which is
	// the worker that delivered the message (see package securechannel).
	if err := echo.Start(ctx, c.node, echo.Address, false); err != nil {
		return err
	}
	l, err := securechannel.Listen(ctx, c.node, secureChannelListener, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	hub, err := c.tcp.Connect(ctx, *hubAddr)
	if err != nil {
		return err
	}
	rf, err := forwarding.Register(ctx, c.node, routing.Route{hub}, secureChannelListener)
	if err != nil {
		return err
	}
	defer rf.Close()
	e.log.Info("secure channel listener ready", "listener", secureChannelListener,
		"forwarding_route", rf.Route().String(), "identity", l.Identity().String(), "admits", lf.allowing())
	printIdentity(e, l.Identity())
	fmt.Fprintf(e.stdout, "forwarding address: %s\n", rf.Route())
	select {
	case <-ctx.Done():
	case <-c.tcp.Done(hub):
		return fmt.Errorf("connection to the hub %s closed", *hubAddr)
	}
	st := l.Stats()
	e.log.Info("stopped", "channels", st.Handshakes, "received", st.Received, "refused", st.Unauthorized,
		"handshake_failures", st.HandshakeFailures, "handshake_timeouts", st.HandshakeTimeouts, "overloaded", st.Overloaded,
		"idle_timeouts", st.IdleTimeouts, "evicted", st.Evicted, "decrypt_failures", st.DecryptFailures, "replays", st.Replays)
	return nil
}

// secureSendFlags are send's flags for sending through a secure channel.
type secureSendFlags struct {
	fs     *flag.FlagSet
	secure *bool
	to     *string
	id     *initiatorFlags

	ch *securechannel.Channel // once created
}

func addSecureSendFlags(fs *flag.FlagSet) *secureSendFlags {
	return &secureSendFlags{
		fs:     fs,
		secure: fs.Bool("secure", false, "create a secure channel to the listener at the end of ROUTE, e.g. \"1#HOST:PORT => 0#ALIAS => secure_channel\", and send MESSAGE through it to --to"),
		to:     fs.String("to", echo.Address, "with --secure: the worker, or route, on the listener's node that MESSAGE goes to"),
		id:     addInitiatorFlags(fs),
	}
}

// destination checks the flags and returns the route beyond the channel,
// or nil without --secure.
func (f *secureSendFlags) destination() (routing.Route, error) {
	var set []string
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "to", "key", "peer", "known-peers", "insecure-accept-any-peer":
			set = append(set, "--"+fl.Name)
		}
	})
	if !*f.secure {
		if len(set) > 0 {
			return nil, usagef("%s needs --secure", set[0])
		}
		return nil, nil
	}
	if err := f.id.check(); err != nil {
		return nil, err
	}
	to, err := routing.ParseRoute(*f.to)
	if err != nil {
		return nil, usagef("bad --to: %v", err)
	}
	return to, nil
}

// route creates a secure channel along route (after its first hop is
// connected) and returns the route through it to to; without --secure it
// returns route unchanged.
func (f *secureSendFlags) route(ctx context.Context, e *env, c *client, route, to routing.Route) (routing.Route, error) {
	if !*f.secure {
		return route, nil
	}
	ch, err := f.id.create(ctx, e, c, route)
	if err != nil {
		return nil, err
	}
	f.ch = ch
	return routing.Route{ch.Address()}.Append(to...), nil
}

// receive waits for the reply at the app mailbox. With --secure only a
// message that came out of the channel counts: the channel prepends its
// address_local to the return route of what it decrypts, while anything
// arriving in clear over TCP starts with the connection's 1# address. A hub
// or relay on the route cannot read the channel, but it can send a
// plaintext message to the well-known "app" mailbox; such a message is
// dropped (and logged once), never printed as the peer's reply.
func (f *secureSendFlags) receive(ctx context.Context, e *env, c *client) (*node.Message, error) {
	dropped := 0
	for {
		m, err := c.node.Receive(ctx)
		if err != nil {
			return nil, err
		}
		if f.ch == nil {
			return m, nil
		}
		if ret := m.Return(); len(ret) > 0 && ret[0] == f.ch.Address() {
			return m, nil
		}
		if dropped++; dropped == 1 {
			e.log.Warn("dropped a message that did not come through the secure channel", "from", m.Return().String())
		}
	}
}

// noReplyHint explains a missing reply through an established channel: a
// listener with an allow-list drops an unlisted initiator after the
// handshake, which the initiator cannot see.
func (f *secureSendFlags) noReplyHint() string {
	if f.ch == nil {
		return ""
	}
	return "if the listener admits only listed initiators, it must --allow your identity " + securechannel.IdentityFromKey(f.ch.LocalStatic()).String()
}
