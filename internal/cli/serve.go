package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/cluster"
	"github.com/ockamhub/ockamhub/githubauth"
	"github.com/ockamhub/ockamhub/internal/telemetry"
	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store/pgstore"
	"github.com/ockamhub/ockamhub/store/sqlstore"
	"github.com/ockamhub/ockamhub/web"
)

// Environment variables read by serve when the flags are not given.
const (
	envGitHubClientID     = "OCKAMHUB_GITHUB_CLIENT_ID"
	envGitHubClientSecret = "OCKAMHUB_GITHUB_CLIENT_SECRET"
)

// readyPingTimeout bounds /readyz's check of the database.
const readyPingTimeout = 2 * time.Second

func runServe(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet("serve", "[flags]", `Runs the Ockam Hub service: web pages and a JSON API over HTTP where people
sign in (GitHub, or a development sign-in by user name) and create hub nodes,
and the hub nodes themselves, each on its own TCP port. Accounts and nodes
are kept in SQLite under --data, or in PostgreSQL with --db postgres://…;
on restart every node comes back on the same port. Pending schema
migrations are applied at start-up (see 'ockamhub db'). While PostgreSQL
is unreachable, requests that need it get 503, /readyz reports not ready
and running nodes keep relaying; it recovers by itself. Prints
"listening on http://IP:PORT" once it serves. SIGINT or SIGTERM shut it
down gracefully (HTTP first, then every node, within 10 s).

The development sign-in (no password) is enabled only when both --http and
--public-url are loopback (a reverse proxy on the same machine makes --http
loopback while strangers reach --public-url), or with --allow-local-signin
(a warning is logged when the public URL is not loopback). Requests whose
Host is not --public-url's host get 421 (DNS rebinding). GitHub sign-in is enabled
by --github-client-id and --github-client-secret (or $`+envGitHubClientID+`
and $`+envGitHubClientSecret+`); register PUBLIC-URL/auth/github/callback
as the OAuth app's callback URL.

The hub limit flags (--max-conns, --idle-timeout, ...) apply to each node.
Connections are limited by default so that no node and no source address
can take the process down: serve raises its file descriptor limit to the
hard limit, keeps a reserve for HTTP and the database (1024 descriptors, or
a tenth of the limit if more), and shares the rest (--max-conns-total) among
the nodes; each node holds at most --max-conns (4096, and at most a quarter
of the total unless given), of which --max-conns-per-ip (256) from one
address; across all nodes one address holds at most a quarter of the
total. Connections over a limit are closed at once and counted. The web
port holds at most --max-http-conns connections (half the reserve), of
which --max-http-conns-per-ip (256) from one address.

Named forwarding and its tokens, and each node's allow-list, are set by the
node's owner on the node's page or through the API.

Several instances can share one PostgreSQL database (--db postgres://…
with --instance NAME, see docs/deploy.md): each listens on every node's
port on --nodes-listen, runs the nodes placed on it and relays the
connections for the others' nodes to them (PROXY protocol v2, accepted
only from live instances); when an instance's lease (--lease) lapses,
the others take its nodes over, and on SIGTERM it hands them over first.`)
	httpAddr := fs.String("http", "127.0.0.1:8080", "address to serve HTTP on; port 0 picks a free port")
	dataDir := fs.String("data", "./ockamhub-data", "directory for the SQLite database when --db is not given")
	dbURL := fs.String("db", "", dbFlagUsage)
	publicURL := fs.String("public-url", "", "URL people reach the web pages at (default http://IP:PORT of --http); an https URL makes cookies Secure")
	nodesListen := fs.String("nodes-listen", "", "IP address hub nodes listen on (default the host of --http)")
	nodesDomain := fs.String("nodes-domain", "", "domain of node host names: an IP address is shown as is, a name as NODE.DOMAIN (default the host of --public-url)")
	nodePorts := fs.String("node-ports", "4001-4999", "TCP port range for hub nodes, FIRST-LAST")
	maxNodes := fs.Int("max-nodes-per-user", 1, "hub nodes one user may have (0 = no limit)")
	allowLocal := fs.Bool("allow-local-signin", false, "enable the development sign-in (no password) even when --http or --public-url is not loopback: anyone who reaches the server can then sign in as anyone")
	signIns := fs.Int("signins-per-hour", web.DefaultSignInsPerHour, fmt.Sprintf("sign-ins allowed per source address per hour, in bursts of %d (0 = no limit)", web.DefaultSignInBurst))
	maxSessions := fs.Int("max-sessions-per-user", web.DefaultMaxSessionsPerAccount, "live sign-in sessions per user; signing in once more ends the oldest (0 = no limit)")
	maxTokens := fs.Int("max-tokens-per-user", web.DefaultMaxTokensPerAccount, "API tokens per user (0 = no limit)")
	maxCreates := fs.Int("node-creations-per-hour", provision.DefaultMaxCreatesPerHour, "nodes one user may create per hour, deleted ones included (0 = no limit)")
	ghID := fs.String("github-client-id", "", "GitHub OAuth app client id (default $"+envGitHubClientID+")")
	ghSecret := fs.String("github-client-secret", "", "GitHub OAuth app client secret (default $"+envGitHubClientSecret+")")
	ghURL := fs.String("github-url", githubauth.DefaultURL, "GitHub web URL (GitHub Enterprise: https://HOST)")
	ghAPI := fs.String("github-api-url", githubauth.DefaultAPIURL, "GitHub API URL (GitHub Enterprise: https://HOST/api/v3)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate file (with --tls-key)")
	tlsKey := fs.String("tls-key", "", "private key file for --tls-cert")
	hf := hubFlags(fs, true)
	setServeDefaults(fs)
	maxTotal := fs.Int("max-conns-total", 0, "connections all nodes together may hold (0 = the file descriptor limit minus a reserve for HTTP and the database)")
	maxHTTP := fs.Int("max-http-conns", 0, "connections the web port holds at once; more wait in the kernel's backlog (0 = half the descriptor reserve)")
	maxHTTPPerIP := fs.Int("max-http-conns-per-ip", serveMaxHTTPConnsPerIP, "connections to the web port from one address (IPv6: one /64); more are closed at once (0 = no limit; behind a reverse proxy every request comes from the proxy's address)")
	metricsAddr := metricsFlag(fs)
	instance := fs.String("instance", "", "join the cluster of instances sharing the --db PostgreSQL database under this name (unique per instance; default the host name when --cluster-addr or --lease is given); needs --db postgres://…")
	clusterAddr := fs.String("cluster-addr", "", "IP address other instances relay this instance's node connections to, and relays come from (default --nodes-listen)")
	lease := fs.Duration("lease", cluster.DefaultLease, "cluster lease: an instance that has not renewed it for this long loses its nodes to the others")
	setupLog := e.logFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	setupLog()
	hubCfg, err := hf.config()
	if err != nil {
		return err
	}
	if *maxTotal < 0 || *maxHTTP < 0 || *maxHTTPPerIP < 0 {
		return usagef("--max-conns-total, --max-http-conns and --max-http-conns-per-ip must not be negative")
	}
	budget := applyConnBudget(e.log, fs, *maxTotal, &hubCfg)
	if *maxHTTP == 0 {
		*maxHTTP = max(budget.reserve/2, 1)
	}
	defer hf.startGC()()
	ports, err := provision.ParsePortRange(*nodePorts)
	if err != nil {
		return usagef("--node-ports: %v", strings.TrimPrefix(err.Error(), "provision: "))
	}
	if *maxNodes < 0 || *signIns < 0 || *maxSessions < 0 || *maxTokens < 0 || *maxCreates < 0 {
		return usagef("--max-nodes-per-user, --signins-per-hour, --max-sessions-per-user, --max-tokens-per-user and --node-creations-per-hour must not be negative")
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if *ghID == "" {
		*ghID = os.Getenv(envGitHubClientID)
	}
	if *ghSecret == "" {
		*ghSecret = os.Getenv(envGitHubClientSecret)
	}
	if (*ghID == "") != (*ghSecret == "") {
		return usagef("GitHub sign-in needs both --github-client-id and --github-client-secret")
	}
	httpHost, _, err := net.SplitHostPort(*httpAddr)
	if err != nil {
		return usagef("--http: %v", err)
	}
	if *nodesListen == "" {
		*nodesListen = httpHost
	}

	db, err := parseDB(*dbURL, *dataDir)
	if err != nil {
		return err
	}
	clustered := false
	fs.Visit(func(f *flag.Flag) {
		clustered = clustered || f.Name == "instance" || f.Name == "cluster-addr" || f.Name == "lease"
	})
	if clustered {
		if !db.postgres {
			return usagef("--instance, --cluster-addr and --lease need --db postgres://…: instances share their nodes through PostgreSQL")
		}
		if *instance == "" {
			if *instance, err = os.Hostname(); err != nil {
				return usagef("--instance: %v", err)
			}
		}
		if *lease < 500*time.Millisecond {
			return usagef("--lease must be at least 500ms")
		}
		if *clusterAddr == "" {
			*clusterAddr = *nodesListen
		}
		if ip := net.ParseIP(*clusterAddr); ip == nil || ip.IsUnspecified() {
			return usagef("--cluster-addr must be an IP address of this machine (give it when --nodes-listen is not one), not %q", *clusterAddr)
		}
	}
	if !db.postgres {
		// The database holds accounts and secret hashes: only we may read
		// it, even if the directory or files were made earlier with wider
		// modes.
		if *dbURL == "" {
			if fixed, err := sqlstore.SecureDir(*dataDir); err != nil {
				return err
			} else if fixed {
				e.log.Warn("data directory was readable by others: made it 0700", "dir", *dataDir)
			}
		}
		fixed, err := sqlstore.SecureFiles(db.dsn)
		if err != nil {
			return err
		}
		for _, f := range fixed {
			e.log.Warn("database file was readable by others: made it 0600", "file", f)
		}
	}
	st, err := db.openRetry(ctx, e.log, *dataDir, *dbURL == "")
	if err != nil {
		if ctx.Err() != nil {
			return nil // SIGINT or SIGTERM while waiting for the database
		}
		return err
	}
	defer st.Close()
	e.log.Info("database", "db", db.String())

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	bound := ln.Addr().(*net.TCPAddr)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	if *publicURL == "" {
		host := bound.String()
		if bound.IP.IsUnspecified() {
			host = net.JoinHostPort("127.0.0.1", fmt.Sprint(bound.Port))
			e.log.Warn("--http listens on all interfaces: set --public-url (and --nodes-domain) to the address people use", "assumed", scheme+"://"+host)
		}
		*publicURL = scheme + "://" + host
	}
	pub, err := url.Parse(strings.TrimSuffix(*publicURL, "/"))
	if err != nil || (pub.Scheme != "http" && pub.Scheme != "https") || pub.Host == "" {
		return usagef("--public-url must be an http or https URL, not %q", *publicURL)
	}
	if *nodesDomain == "" {
		*nodesDomain = pub.Hostname()
	}

	var gh *githubauth.Client
	if *ghID != "" {
		gh, err = githubauth.New(githubauth.Config{
			ClientID: *ghID, ClientSecret: *ghSecret, URL: *ghURL, APIURL: *ghAPI,
			RedirectURL: pub.String() + "/auth/github/callback",
		})
		if err != nil {
			return usagef("%v", err)
		}
	}
	pubLoopback := isLoopbackHost(pub.Hostname())
	localSignIn := bound.IP.IsLoopback() && pubLoopback || *allowLocal

	pcfg := provision.Config{
		Store: st, Hub: hubCfg, ListenHost: *nodesListen, Domain: *nodesDomain,
		Ports: ports, MaxNodesPerAccount: *maxNodes, MaxCreatesPerHour: orNone(*maxCreates), Logger: e.log,
	}
	var member *cluster.Member
	if clustered {
		member, err = cluster.New(cluster.Config{
			DB: st.(*pgstore.Store), Name: *instance, Addr: *clusterAddr, ListenHost: *nodesListen, Lease: *lease, Logger: e.log,
		})
		if err != nil {
			return usagef("%v", err)
		}
		pcfg.Cluster, pcfg.Listen = member, member.Listen
	}
	prov, err := provision.New(pcfg)
	if err != nil {
		return err
	}
	if err := prov.Restore(ctx); err != nil {
		return err
	}
	var extraMetrics []telemetry.Extra
	if member != nil {
		member.Attach(prov)
		if err := member.Start(ctx); err != nil {
			member.Close()
			return fmt.Errorf("joining the cluster: %w", err)
		}
		defer member.Close()
		extraMetrics = clusterMetrics(member)
	}
	handler, err := web.New(web.Config{
		Store: st, Provisioner: prov, GitHub: gh, LocalSignIn: localSignIn,
		SecureCookies: pub.Scheme == "https", Logger: e.log,
		TrustedOrigins: []string{pub.Scheme + "://" + pub.Host},
		PublicURL:      pub.String(), LoopbackHosts: bound.IP.IsLoopback() && pubLoopback,
		SignInsPerHour: orNone(*signIns), MaxSessionsPerAccount: orNone(*maxSessions), MaxTokensPerAccount: orNone(*maxTokens),
	})
	if err != nil {
		prov.Shutdown(context.Background())
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsConfig,
	}
	// The web port's connections come out of the descriptor reserve too:
	// bounded, so that idle connections from one address cannot starve
	// the database and the nodes.
	hln := newHTTPLimitListener(ln, *maxHTTP, *maxHTTPPerIP, e.log)
	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(hln, "", "")
		} else {
			served <- srv.Serve(hln)
		}
	}()
	stopMetrics, err := startMetrics(e, *metricsAddr, prov.Stats, func() error {
		if ctx.Err() != nil {
			return errors.New("shutting down")
		}
		pctx, cancel := context.WithTimeout(ctx, readyPingTimeout)
		defer cancel()
		if err := st.Ping(pctx); err != nil {
			return errors.New("database unavailable")
		}
		return nil
	}, extraMetrics...)
	if err != nil {
		srv.Close()
		prov.Shutdown(context.Background())
		return err
	}
	defer stopMetrics()
	e.log.Info("serving", "addr", ln.Addr().String(), "public_url", pub.String(),
		"github_signin", gh != nil, "local_signin", localSignIn,
		"nodes_listen", *nodesListen, "nodes_domain", *nodesDomain, "node_ports", ports.String(),
		"max_http_conns", *maxHTTP, "max_http_conns_per_ip", *maxHTTPPerIP)
	if localSignIn && !(bound.IP.IsLoopback() && pubLoopback) {
		e.log.Warn("the development sign-in is on and the server is not on loopback only: anyone who reaches it can sign in as anyone, without a password",
			"public_url", pub.String(), "http", ln.Addr().String())
	}
	if gh == nil && !localSignIn {
		e.log.Warn("no sign-in method is enabled: give --github-client-id and --github-client-secret, or --allow-local-signin")
	}
	// Last: scripts and tests take this line as "ready", and the startup
	// log above is complete by then.
	fmt.Fprintf(e.stdout, "listening on %s://%s\n", scheme, ln.Addr())

	var serveErr error
	select {
	case serveErr = <-served:
	case <-ctx.Done():
		e.log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownBudget)
	defer cancel()
	if serveErr == nil {
		if err := srv.Shutdown(sctx); err != nil {
			e.log.Warn("HTTP shutdown incomplete", "err", err)
			srv.Close()
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if member != nil {
		// Hand every node over before stopping: the front door relays
		// to the new owners meanwhile.
		member.Leave(sctx)
	}
	if err := prov.Shutdown(sctx); err != nil {
		e.log.Warn("hub nodes shutdown incomplete", "err", err)
	}
	if serveErr != nil {
		return fmt.Errorf("serve: %w", serveErr)
	}
	e.log.Info("stopped")
	return nil
}

// isLoopbackHost reports whether host (a URL's host name) names this
// machine only: localhost, *.localhost, or a loopback address.
func isLoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// orNone maps a flag's 0 ("no limit") to a library's negative "no limit"
// (where 0 means the default).
func orNone(v int) int {
	if v == 0 {
		return -1
	}
	return v
}

// clusterMetrics are the cluster gauges and counters of /metrics.
func clusterMetrics(m *cluster.Member) []telemetry.Extra {
	f := func(name, help string, counter bool, v func(cluster.Stats) float64) telemetry.Extra {
		return telemetry.Extra{Name: name, Help: help, Counter: counter, Value: func() float64 { return v(m.Stats()) }}
	}
	return []telemetry.Extra{
		f("ockamhub_cluster_live_instances", "Live instances of the cluster, this one included, at the last lease renewal.", false, func(s cluster.Stats) float64 { return float64(s.LiveInstances) }),
		f("ockamhub_cluster_instance_nodes", "Hub nodes running on this instance.", false, func(s cluster.Stats) float64 { return float64(s.Nodes) }),
		f("ockamhub_cluster_fenced", "1 while this instance's nodes are stopped because its lease could not be renewed.", false, func(s cluster.Stats) float64 {
			if s.Fenced {
				return 1
			}
			return 0
		}),
		f("ockamhub_cluster_relayed_connections_open", "Connections this instance is relaying to the instance that runs their node.", false, func(s cluster.Stats) float64 { return float64(s.RelayedOpen) }),
		f("ockamhub_cluster_relayed_connections_total", "Connections relayed to the instance that runs their node.", true, func(s cluster.Stats) float64 { return float64(s.Relayed) }),
		f("ockamhub_cluster_refused_connections_total", "Connections refused by the front door: a live instance's relay with a bad PROXY header or for a node not running here, or a node no instance can serve (a PROXY header from any other source is counted in ockamhub_cluster_proxy_refused_total).", true, func(s cluster.Stats) float64 { return float64(s.Refused) }),
		f("ockamhub_cluster_proxy_refused_total", "PROXY protocol headers refused because a client sent them (directly, or after a live instance's relay header), each closing its connection.", true, func(s cluster.Stats) float64 { return float64(s.ProxyRefused) }),
		f("ockamhub_cluster_handovers_total", "Nodes handed to another instance on shutdown.", true, func(s cluster.Stats) float64 { return float64(s.HandOvers) }),
		f("ockamhub_cluster_claims_total", "Nodes claimed from instances whose lease lapsed.", true, func(s cluster.Stats) float64 { return float64(s.Claimed) }),
	}
}
