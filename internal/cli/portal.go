package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/securechannel"
	"github.com/ockamhub/ockamhub/service/forwarding"
)

const portalUsage = `Usage: ockamhub portal COMMAND [flags]

Commands:
  outlet    relay each portal to a TCP target, reachable through a hub
  inlet     listen on a local port; each connection becomes a portal to an outlet

A TCP portal makes a service behind NAT reachable: the outlet runs next to
the service, the inlet next to its client, and the hub relays between them
(docs/protocol.md, "Portals"). Run 'ockamhub portal COMMAND --help' for a
command's flags.`

// defaultPortalMaxConns is --max-conns for portal outlet: each portal holds
// a target connection, goroutines and buffers, and any peer that can reach
// the outlet can open one.
const defaultPortalMaxConns = 1024

func runPortal(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("want a command: outlet or inlet")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(e.stderr, portalUsage)
		return flag.ErrHelp
	case "outlet":
		return runPortalOutlet(ctx, e, args[1:])
	case "inlet":
		return runPortalInlet(ctx, e, args[1:])
	}
	return usagef("unknown command %q; want outlet or inlet", args[0])
}

func runPortalOutlet(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("portal outlet", "--target HOST:PORT --hub HOST:PORT [--name outlet] [--secure] [--g2] [flags]", `Runs a TCP portal outlet: for each portal an inlet opens, it connects to
--target and relays the bytes both ways. With --hub it registers at the
hub's forwarding_service (reconnecting and registering again when the hub
restarts or the network drops) and prints
  outlet route: ROUTE
for inlets (ockamhub portal inlet --route ROUTE); without --hub, --listen
serves inlets directly over TCP.

With --secure the outlet is reached only inside a secure channel: it runs a
secure channel listener, prints its identity first
  identity: IDENTITY
and ROUTE is the listener's route; inlets pin IDENTITY with --peer. The hub
then relays only ciphertext. Portals speak the December 2021 (G3) protocol,
or with --g2 the September-November 2021 one, for 2021 Rust inlets of those
releases. Each portal's open and close are logged with its byte counts.`)
	target := fs.String("target", "", "the TCP service HOST:PORT each portal connects to (required)")
	hubAddr := fs.String("hub", "", "the hub's HOST:PORT")
	listen := fs.String("listen", "", "without --hub: serve inlets directly on this TCP address, e.g. 127.0.0.1:4100")
	name := fs.String("name", portal.DefaultOutletName, "the outlet's worker address (inlets reach it as their route's last hop, or inside the channel with --secure)")
	secure := fs.Bool("secure", false, "reach the outlet only through an end-to-end secure channel")
	g2 := fs.Bool("g2", false, "speak the G2 portal protocol (ockam_transport_tcp 0.22-0.36, Sep-Nov 2021) instead of G3")
	fwdName := fs.String("forwarder-name", "", "with --hub: register this name with the hub's static_forwarding_service, so that the route (1#HUB => 0#forward_to_NAME) stays the same when the outlet or the hub restarts; the hub must run with --static-forwarding")
	token := fs.String("token", "", "token for --forwarder-name, when the hub restricts names")
	maxConns := fs.Int("max-conns", defaultPortalMaxConns, "most open portals; a Ping over it is answered as an unreachable target would be (0 = no limit)")
	noFC := fs.Bool("no-flow-control", false, "never offer ockamhub's flow-control extension in the Pong: speak exact 2021 G3 bytes to every inlet (docs/protocol.md §6.4)")
	g2Idle := fs.Duration("g2-idle-timeout", 0, "with --g2: close a portal that carried nothing either way for this long (G2 has no close signal; 0 = never)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the hub to answer a registration")
	gcHeadroom := gcHeadroomFlag(fs)
	lf := addListenerFlags(fs)
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *target == "":
		return usagef("--target is required")
	case (*hubAddr == "") == (*listen == ""):
		return usagef("give --hub HOST:PORT (through a hub) or --listen ADDR (direct), not both")
	case *maxConns < 0:
		return usagef("--max-conns must not be negative")
	case *gcHeadroom < 0:
		return usagef("--gc-headroom must not be negative")
	case *fwdName != "" && *hubAddr == "":
		return usagef("--forwarder-name needs --hub")
	case *token != "" && *fwdName == "":
		return usagef("--token needs --forwarder-name")
	}
	if _, _, err := net.SplitHostPort(*target); err != nil {
		return usagef("bad --target %q: want HOST:PORT", *target)
	}
	defer startGCHeadroom(*gcHeadroom)()
	if *hubAddr != "" {
		if _, _, err := net.SplitHostPort(*hubAddr); err != nil {
			return usagef("bad --hub %q: want HOST:PORT", *hubAddr)
		}
	}
	setChanged := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setChanged[f.Name] = true })
	if !*secure {
		for _, n := range []string{"key", "allow", "allow-file"} {
			if setChanged[n] {
				return usagef("--%s needs --secure", n)
			}
		}
	}
	setupLog()
	c, err := newClient(e, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	if *g2Idle < 0 || (*g2Idle > 0 && !*g2) {
		return usagef("--g2-idle-timeout needs --g2 and must not be negative")
	}
	cfg := portal.OutletConfig{Name: *name, Target: *target, MaxConns: *maxConns, Logger: e.log, Options: portal.Options{G2IdleTimeout: *g2Idle, NoExtension: *noFC, ConnDone: c.tcp.Done}}
	if *g2 {
		cfg.Generation = portal.G2
	}
	dest := *name // what the forwarder, or the printed route, reaches
	if *secure {
		lcfg, err := lf.config(e)
		if err != nil {
			return err
		}
		l, err := securechannel.Listen(ctx, c.node, secureChannelListener, lcfg)
		if err != nil {
			return err
		}
		defer l.Close()
		printIdentity(e, l.Identity())
		e.log.Info("secure channel listener ready", "listener", secureChannelListener, "identity", l.Identity().String(), "admits", lf.allowing())
		// The outlet's node is reachable without the channel too (any
		// route through its hub connection): admit only Pings that came
		// out of one of our channels.
		cfg.Authorize = func(m *node.Message) bool {
			first, _ := m.Return().Next()
			_, ok := l.Channel(first)
			return ok
		}
		budgets := &channelBudgets{l: l, m: map[routing.Address]*portal.Budget{}}
		cfg.Budget = budgets.get
		dest = secureChannelListener
	}
	o, err := portal.NewOutlet(c.node, cfg)
	if err != nil {
		return err
	}
	defer o.Close()
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		served := make(chan error, 1)
		go func() { served <- c.tcp.Serve(ln) }()
		route := routing.Route{routing.TCPAddress(ln.Addr().String()), routing.LocalAddress(dest)}
		fmt.Fprintf(e.stdout, "outlet route: %s\n", route)
		e.log.Info("outlet ready", "route", route.String(), "target", *target, "generation", cfg.Generation.String())
		select {
		case <-ctx.Done():
		case err := <-served:
			return err
		}
		return shutdownOutlet(e, o)
	}
	err = forwarding.Maintain(ctx, c.node, c.tcp, forwarding.MaintainConfig{
		Hub:             *hubAddr,
		Destination:     dest,
		Name:            *fwdName,
		Token:           *token,
		RegisterTimeout: *timeout,
		OnRegistered: func(route routing.Route) {
			fmt.Fprintf(e.stdout, "outlet route: %s\n", route)
			e.log.Info("outlet registered", "route", route.String(), "target", *target, "generation", cfg.Generation.String(), "secure", *secure)
		},
		OnDisconnected: func(err error) {
			e.log.Warn("hub unreachable; reconnecting", "hub", *hubAddr, "err", err)
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return shutdownOutlet(e, o)
}

func shutdownOutlet(e *env, o *portal.Outlet) error {
	o.Close()
	st := o.Stats()
	e.log.Info("outlet stopped", "portals", st.Opened, "failed", st.Failed, "bytes_to_target", st.BytesOut, "bytes_from_target", st.BytesIn)
	return nil
}

// channelBudgets gives every channel of a listener one message budget, so
// that the outlet's portals in that channel stop before its nonce runs out.
type channelBudgets struct {
	l  *securechannel.Listener
	mu sync.Mutex
	m  map[routing.Address]*portal.Budget
}

func (b *channelBudgets) get(route routing.Route) *portal.Budget {
	first, _ := route.Next()
	ch, ok := b.l.Channel(first)
	if !ok {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) > 1024 {
		for a := range b.m {
			if _, ok := b.l.Channel(a); !ok {
				delete(b.m, a)
			}
		}
	}
	bu, ok := b.m[first]
	if !ok {
		// What the channel already carried (nothing, for a channel used
		// only by portals) is not the portals' to spend.
		bu = portal.NewBudget(portal.RustChannelMessages - int(ch.Stats().Sent))
		b.m[first] = bu
	}
	return bu
}

func runPortalInlet(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("portal inlet", "--listen 127.0.0.1:PORT --route ROUTE [--secure] [flags]", `Runs a TCP portal inlet: listens on --listen, prints
  inlet listening on IP:PORT
and turns each accepted connection into a portal to the outlet at ROUTE
(the line "outlet route: ROUTE" of ockamhub portal outlet), until stopped.
The outlet's protocol (G3 or G2) is recognised from its answer.

With --secure, ROUTE leads to the outlet's secure channel listener: the
inlet creates the channel first (pinning the outlet's identity with --peer,
or recording it on first use in the known-peers file) and reaches the
outlet, --outlet, inside it; a new channel is created when the hub
connection was lost or the channel has carried half of its 65535 messages.
Each portal's open and close are logged with its byte counts.`)
	listen := fs.String("listen", "", "local TCP address to listen on, e.g. 127.0.0.1:2222 (required)")
	routeText := fs.String("route", "", "the outlet's route, starting with the hub's 1#HOST:PORT (required)")
	secure := fs.Bool("secure", false, "reach the outlet inside an end-to-end secure channel created along ROUTE")
	outletName := fs.String("outlet", portal.DefaultOutletName, "with --secure: the outlet's address inside the channel (the outlet's --name)")
	g2Idle := fs.Duration("g2-idle-timeout", 0, "close a portal to a G2 outlet that carried nothing either way for this long (G2 has no close signal; 0 = never)")
	idf := addInitiatorFlags(fs)
	gcHeadroom := gcHeadroomFlag(fs)
	setupLog := e.logFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case *listen == "":
		return usagef("--listen is required")
	case *routeText == "":
		return usagef("--route is required")
	case *g2Idle < 0:
		return usagef("--g2-idle-timeout must not be negative")
	case *gcHeadroom < 0:
		return usagef("--gc-headroom must not be negative")
	}
	route, err := routing.ParseRoute(*routeText)
	if err != nil {
		return usagef("bad --route: %v", err)
	}
	if first, _ := route.Next(); first.Type != routing.TCP {
		return usagef("the route must start with a TCP address (1#HOST:PORT), not %s", first)
	}
	defer startGCHeadroom(*gcHeadroom)()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !*secure {
		for _, n := range []string{"key", "peer", "known-peers", "insecure-accept-any-peer", "outlet"} {
			if set[n] {
				return usagef("--%s needs --secure", n)
			}
		}
	} else if err := idf.check(); err != nil {
		return err
	}
	setupLog()
	c, err := newClient(e, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	ir := &inletRoute{e: e, c: c, route: route, secure: *secure, outlet: routing.LocalAddress(*outletName), idf: idf}
	// Connect (and with --secure, create the channel) before listening, so
	// that a wrong route or identity fails at once.
	if _, _, err := ir.get(ctx); err != nil {
		return err
	}
	in, err := portal.NewInlet(c.node, portal.InletConfig{RouteFunc: ir.get, Logger: e.log, Options: portal.Options{G2IdleTimeout: *g2Idle, ConnDone: c.tcp.Done}})
	if err != nil {
		return err
	}
	ln, err := portal.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- in.Serve(ln) }()
	fmt.Fprintf(e.stdout, "inlet listening on %s\n", ln.Addr())
	e.log.Info("inlet ready", "listen", ln.Addr().String(), "route", route.String(), "secure", *secure)
	select {
	case <-ctx.Done():
	case err := <-served:
		in.Close()
		return err
	}
	in.Close()
	<-served
	st := in.Stats()
	e.log.Info("inlet stopped", "portals", st.Opened, "failed", st.Failed, "bytes_to_outlet", st.BytesIn, "bytes_from_outlet", st.BytesOut)
	ir.close()
	return nil
}

// inletRoute gives each new portal its route: it reconnects to the route's
// first hop when that connection has gone (the hub restarted), and with
// --secure creates a channel, again when the connection was lost or the
// channel has used half of its message budget.
type inletRoute struct {
	e      *env
	c      *client
	route  routing.Route
	secure bool
	outlet routing.Address
	idf    *initiatorFlags

	mu     sync.Mutex
	hop    routing.Address
	conn   <-chan struct{} // closed when the first hop's connection closes
	ch     *securechannel.Channel
	budget *portal.Budget
}

func (r *inletRoute) get(ctx context.Context) (routing.Route, *portal.Budget, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := r.conn == nil
	if r.conn != nil {
		select {
		case <-r.conn:
			lost = true
		default:
		}
	}
	if lost {
		first, _ := r.route.Next()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		hop, err := r.c.tcp.Connect(cctx, first.Value)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		r.hop, r.conn = hop, r.c.tcp.Done(hop)
		r.dropChannel()
	}
	if !r.secure {
		return r.route, nil, nil
	}
	if r.ch == nil || r.budget.Used() >= portal.RustChannelMessages/2 {
		r.dropChannel()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		ch, err := r.idf.create(cctx, r.e, r.c, r.route)
		cancel()
		if err != nil {
			return nil, nil, err
		}
		r.ch, r.budget = ch, portal.NewBudget(portal.RustChannelMessages)
		r.e.log.Info("secure channel to the outlet established", "channel", ch.Address().String(), "peer", ch.PeerIdentity().String())
	}
	return routing.Route{r.ch.Address(), r.outlet}, r.budget, nil
}

// dropChannel forgets the current channel; its open portals keep it until
// they close (the listener's idle timeout reclaims the other end).
func (r *inletRoute) dropChannel() {
	r.ch, r.budget = nil, nil
}

func (r *inletRoute) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		r.ch.Close()
	}
}
