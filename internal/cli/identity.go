package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
)

// Secure channel identity flags, shared by every command with a secure
// channel end, so that they all name and check identities the same way
// (issue 13).
//
// Initiator side ("send --secure", "portal inlet --secure"):
//
//	idf := addInitiatorFlags(fs)               // --key, --peer, --known-peers, --insecure-accept-any-peer
//	... parse ...
//	if err := idf.check(); err != nil { return err } // usage errors, before any work
//	ch, err := idf.create(ctx, e, c.node, route)     // pins, records (TOFU) or, if asked, accepts anyone
//
// Listener side ("secure-channel listen", "portal outlet --secure"):
//
//	lf := addListenerFlags(fs)                 // --key, --allow, --allow-file, --handshake-timeout, --idle-timeout, --max-channels, --max-pending-handshakes
//	... parse ...
//	cfg, err := lf.config(e)                   // loads the key, the allow-list
//	l, err := securechannel.Listen(ctx, n, addr, cfg)
//	printIdentity(e, l.Identity())             // prints "identity: HEX" on its own line

// initiatorFlags are the identity flags of a channel initiator.
type initiatorFlags struct {
	fs         *flag.FlagSet
	key        *string
	peer       *string
	knownPeers *string
	insecure   *bool
}

// addInitiatorFlags defines --key, --peer, --known-peers and
// --insecure-accept-any-peer on fs.
func addInitiatorFlags(fs *flag.FlagSet) *initiatorFlags {
	return &initiatorFlags{
		fs:         fs,
		key:        fs.String("key", "", "`file` holding this side's static X25519 private key (hex), created with mode 0600 if missing; listeners recognise you by its identity (default "+defaultPathHelp(securechannel.DefaultKeyFile)+")"),
		peer:       fs.String("peer", "", "the responder's `identity` (the 64 hex digits of the listener's \"identity:\" line): any other responder is refused"),
		knownPeers: fs.String("known-peers", "", "without --peer: `file` recording the identity first seen for each route; a later different identity is refused (default "+defaultPathHelp(securechannel.DefaultKnownPeersFile)+")"),
		insecure:   fs.Bool("insecure-accept-any-peer", false, "accept ANY responder, as the 2021 Rust programs did: the channel is encrypted but NOT authenticated (anyone on the route, the hub included, can read it); for experiments only"),
	}
}

// defaultPathHelp names a default file in the configuration directory.
func defaultPathHelp(name string) string {
	dir, err := securechannel.ConfigDir()
	if err != nil {
		return "$XDG_CONFIG_HOME/ockamhub/" + name
	}
	return dir + "/" + name
}

// check returns a usage error for contradictory flags.
func (f *initiatorFlags) check() error {
	if *f.insecure && *f.peer != "" {
		return usagef("--insecure-accept-any-peer and --peer contradict each other: --peer pins the responder")
	}
	if *f.insecure && *f.knownPeers != "" {
		return usagef("--insecure-accept-any-peer and --known-peers contradict each other")
	}
	if *f.peer != "" {
		if _, err := securechannel.ParseIdentity(*f.peer); err != nil {
			return usagef("bad --peer: %v", err)
		}
	}
	return nil
}

// config returns the channel configuration for route: our key, and the
// pinned, recorded (trust on first use) or, when asked, any responder.
func (f *initiatorFlags) config(e *env, route routing.Route) (securechannel.Config, error) {
	if err := f.check(); err != nil {
		return securechannel.Config{}, err
	}
	cfg := securechannel.Config{Logger: e.log}
	kp, err := loadKeyFlag(e, *f.key)
	if err != nil {
		return cfg, err
	}
	cfg.StaticKeyPair = kp
	switch {
	case *f.peer != "":
		id, _ := securechannel.ParseIdentity(*f.peer) // checked above
		cfg.ExpectedPeerStatic = id.Key()
	case *f.insecure:
		cfg.InsecureAcceptAnyPeer = true
		fmt.Fprintln(e.stderr, "WARNING: --insecure-accept-any-peer: this secure channel is encrypted but NOT authenticated; anyone on the route, the hub included, may be the other end and read everything")
	default:
		path := *f.knownPeers
		if path == "" {
			if path, err = securechannel.DefaultKnownPeersPath(); err != nil {
				return cfg, fmt.Errorf("%w; pass --known-peers FILE or --peer IDENTITY", err)
			}
		}
		name := route.String()
		cfg.VerifyPeer = securechannel.OpenKnownPeers(path).Verifier(name, func(id securechannel.Identity) {
			fmt.Fprintf(e.stderr, "recorded the identity %s for %s in %s (first use); a different identity for this route will be refused\n", id, name, path)
		})
	}
	return cfg, nil
}

// create runs the handshake along route with the flags' identity policy
// and returns the channel.
func (f *initiatorFlags) create(ctx context.Context, e *env, c *client, route routing.Route) (*securechannel.Channel, error) {
	cfg, err := f.config(e, route)
	if err != nil {
		return nil, err
	}
	ch, err := securechannel.Create(ctx, c.node, route, cfg)
	if err != nil {
		return nil, err
	}
	if ch.Authenticated() {
		e.log.Debug("secure channel established", "address", ch.Address().String(), "peer", ch.PeerIdentity().String())
	} else {
		e.log.Warn("UNAUTHENTICATED secure channel established (--insecure-accept-any-peer)", "address", ch.Address().String(), "peer", ch.PeerIdentity().String())
	}
	return ch, nil
}

// loadKeyFlag loads or creates the key file named by a --key flag, or the
// default identity file when the flag is empty.
func loadKeyFlag(e *env, path string) (kp noise.KeyPair, err error) {
	if path == "" {
		if path, err = securechannel.DefaultKeyPath(); err != nil {
			return kp, fmt.Errorf("%w; pass --key FILE", err)
		}
	}
	kp, err = securechannel.LoadOrCreateKey(path)
	if err != nil {
		return kp, err
	}
	e.log.Debug("identity loaded", "key_file", path, "identity", securechannel.IdentityOf(kp).String())
	return kp, nil
}

// listenerFlags are the identity and resource flags of a channel listener.
type listenerFlags struct {
	key              *string
	allow            identityList
	allowFile        *string
	handshakeTimeout *time.Duration
	idleTimeout      *time.Duration
	maxChannels      *int
	maxPending       *int
}

// identityList is a repeatable flag of identities.
type identityList []securechannel.Identity

func (l *identityList) String() string {
	s := make([]string, len(*l))
	for i, id := range *l {
		s[i] = id.String()
	}
	return strings.Join(s, ",")
}

func (l *identityList) Set(v string) error {
	id, err := securechannel.ParseIdentity(v)
	if err != nil {
		return err
	}
	*l = append(*l, id)
	return nil
}

// addListenerFlags defines --key, --allow, --allow-file,
// --handshake-timeout, --idle-timeout, --max-channels and
// --max-pending-handshakes on fs.
func addListenerFlags(fs *flag.FlagSet) *listenerFlags {
	f := &listenerFlags{
		key:              fs.String("key", "", "`file` holding the listener's static X25519 private key (hex), created with mode 0600 if missing, so its identity stays the same across restarts; it must be a regular file of yours, mode 0600 (default "+defaultPathHelp(securechannel.DefaultKeyFile)+")"),
		allowFile:        fs.String("allow-file", "", "`file` of initiator identities to admit, one per line (# comments); with --allow, either admits"),
		handshakeTimeout: fs.Duration("handshake-timeout", securechannel.DefaultHandshakeTimeout, "stop a handshake the initiator has not finished in this long"),
		idleTimeout:      fs.Duration("idle-timeout", securechannel.DefaultIdleTimeout, "close a channel that carries no message for this long (0 = never)"),
		maxChannels:      fs.Int("max-channels", securechannel.DefaultMaxChannels, "most open channels; when full, the least recently active of the source holding the most is closed for a new one (0 = no limit)"),
		maxPending:       fs.Int("max-pending-handshakes", securechannel.DefaultMaxPendingHandshakes, "most unfinished handshakes; one source holds at most "+fmt.Sprint(securechannel.DefaultMaxPendingPerSource)+" and the fullest source gives way first"),
	}
	fs.Var(&f.allow, "allow", "admit only initiators with this `identity` (repeatable); without --allow or --allow-file any initiator is admitted, as the 2021 Rust programs need")
	return f
}

// config loads the key and the allow-list and returns the listener's
// configuration.
func (f *listenerFlags) config(e *env) (securechannel.ListenerConfig, error) {
	if *f.handshakeTimeout <= 0 || *f.idleTimeout < 0 || *f.maxChannels < 0 || *f.maxPending <= 0 {
		return securechannel.ListenerConfig{}, usagef("--handshake-timeout and --max-pending-handshakes must be positive, --idle-timeout and --max-channels not negative")
	}
	cfg := securechannel.ListenerConfig{
		Logger:               e.log,
		HandshakeTimeout:     *f.handshakeTimeout,
		IdleTimeout:          *f.idleTimeout,
		MaxChannels:          *f.maxChannels,
		MaxPendingHandshakes: *f.maxPending,
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = -1 // never
	}
	if cfg.MaxChannels == 0 {
		cfg.MaxChannels = -1 // no limit
	}
	kp, err := loadKeyFlag(e, *f.key)
	if err != nil {
		return cfg, err
	}
	cfg.StaticKeyPair = kp
	allowed := append([]securechannel.Identity(nil), f.allow...)
	if *f.allowFile != "" {
		ids, err := securechannel.ReadAllowFile(*f.allowFile)
		if err != nil {
			return cfg, err
		}
		if len(ids) == 0 {
			return cfg, fmt.Errorf("--allow-file %s lists no identity: it would admit nobody", *f.allowFile)
		}
		allowed = append(allowed, ids...)
	}
	if len(allowed) > 0 {
		cfg.Authorized = securechannel.AllowIdentities(allowed...)
	} else {
		cfg.AcceptAnyInitiator = true
	}
	return cfg, nil
}

// allowing describes the listener's admission policy for its startup log.
func (f *listenerFlags) allowing() string {
	if len(f.allow) == 0 && *f.allowFile == "" {
		return "any initiator"
	}
	return "listed identities only"
}

// printIdentity prints a channel end's identity on its own line, for
// people to compare and for initiators' --peer.
func printIdentity(e *env, id securechannel.Identity) {
	fmt.Fprintf(e.stdout, "identity: %s\n", id)
}
