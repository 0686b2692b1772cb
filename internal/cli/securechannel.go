package cli

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"net"

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

Run 'ockamhub secure-channel COMMAND --help' for a command's flags.`

func runSecureChannel(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want a command: listen")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stderr, secureChannelUsage)
		return flag.ErrHelp
	case "listen":
		return runSecureChannelListen(ctx, e, args[1:])
	}
	return usagef("unknown command %q; want listen", args[0])
}

func runSecureChannelListen(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("secure-channel listen", "--hub HOST:PORT [--key FILE] [flags]", `Runs a secure channel listener at "secure_channel" with an echo_service
behind it, on a node that connects to the hub and registers a forwarder for
the listener with the hub's forwarding_service (protocol.md §10.6). Prints
  forwarding address: 1#HOST:PORT => 0#ALIAS
then serves until stopped. Send through an end-to-end encrypted channel with:
  ockamhub send --secure --route "1#HOST:PORT => 0#ALIAS => secure_channel" hi
The hub relays only ciphertext. Without --key the listener's static key is
new on every run; the key in use is logged.`)
	hubAddr := fs.String("hub", "", "the hub's HOST:PORT (required)")
	keyFile := fs.String("key", "", "file holding the listener's static X25519 private key (hex), created with mode 0600 if missing; a file readable by others is refused")
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
	var cfg securechannel.ListenerConfig
	if *keyFile != "" {
		if cfg.StaticKeyPair, err = securechannel.LoadOrCreateKey(*keyFile); err != nil {
			return err
		}
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
	cfg.Logger = e.log
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
	key := l.StaticPublic()
	e.log.Info("secure channel listener ready", "listener", secureChannelListener,
		"forwarding_route", rf.Route().String(), "static_key", hex.EncodeToString(key[:]))
	fmt.Fprintf(e.stdout, "forwarding address: %s\n", rf.Route())
	select {
	case <-ctx.Done():
	case <-c.tcp.Done(hub):
		return fmt.Errorf("connection to the hub %s closed", *hubAddr)
	}
	st := l.Stats()
	e.log.Info("stopped", "channels", st.Handshakes, "received", st.Received,
		"handshake_failures", st.HandshakeFailures, "decrypt_failures", st.DecryptFailures, "replays", st.Replays)
	return nil
}

// secureSendFlags are send's flags for sending through a secure channel.
type secureSendFlags struct {
	fs     *flag.FlagSet
	secure *bool
	to     *string
}

func addSecureSendFlags(fs *flag.FlagSet) *secureSendFlags {
	return &secureSendFlags{
		fs:     fs,
		secure: fs.Bool("secure", false, "create a secure channel to the listener at the end of ROUTE, e.g. \"1#HOST:PORT => 0#ALIAS => secure_channel\", and send MESSAGE through it to --to"),
		to:     fs.String("to", echo.Address, "with --secure: the worker, or route, on the listener's node that MESSAGE goes to"),
	}
}

// destination checks the flags and returns the route beyond the channel,
// or nil without --secure.
func (f *secureSendFlags) destination() (routing.Route, error) {
	toSet := false
	f.fs.Visit(func(fl *flag.Flag) { toSet = toSet || fl.Name == "to" })
	if !*f.secure {
		if toSet {
			return nil, usagef("--to needs --secure")
		}
		return nil, nil
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
	ch, err := securechannel.Create(ctx, c.node, route, securechannel.Config{Logger: e.log})
	if err != nil {
		return nil, err
	}
	peer := ch.PeerStatic()
	e.log.Debug("secure channel established", "address", ch.Address().String(), "peer_static", hex.EncodeToString(peer[:]))
	return routing.Route{ch.Address()}.Append(to...), nil
}
