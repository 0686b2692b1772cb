package cli

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// serve's defaults for its web port (issue 10: no source address can take
// the process down, through the nodes or through HTTP).
const (
	// serveMaxHTTPConnsPerIP is --max-http-conns-per-ip: a browser opens
	// about six connections to a site; a reverse proxy on the same
	// machine, which every request comes through, needs one per request
	// in flight.
	serveMaxHTTPConnsPerIP = 256
)

// httpLimitListener bounds the connections an HTTP server holds, so that
// idle or slow connections to the web port cannot use the descriptors
// kept in reserve for HTTP and the database. A connection from a source
// (an IPv4 address, or an IPv6 /64) that already holds perIP is closed at
// once and counted; when total connections are open, Accept waits for one
// to close (the kernel's backlog holds the next ones, at no descriptor's
// cost). Close unblocks a waiting Accept. It is safe for concurrent use.
type httpLimitListener struct {
	net.Listener
	perIP int           // 0: no per-source limit
	slots chan struct{} // a token per open connection; nil: no total limit
	done  chan struct{} // closed by Close
	once  sync.Once

	mu    sync.Mutex
	bySrc map[string]int

	refused atomic.Uint64
	log     *slog.Logger
	logRate rate.Sometimes
}

func newHTTPLimitListener(l net.Listener, total, perIP int, log *slog.Logger) *httpLimitListener {
	hl := &httpLimitListener{Listener: l, perIP: perIP, done: make(chan struct{}), bySrc: make(map[string]int),
		log: log, logRate: rate.Sometimes{First: 3, Interval: time.Second}}
	if total > 0 {
		hl.slots = make(chan struct{}, total)
	}
	return hl
}

// Accept waits for a free slot, then returns the next connection whose
// source is under its limit.
func (l *httpLimitListener) Accept() (net.Conn, error) {
	for {
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				return nil, net.ErrClosed
			}
		}
		c, err := l.Listener.Accept()
		if err != nil {
			l.freeSlot()
			return nil, err
		}
		src := httpSource(c.RemoteAddr())
		if l.perIP > 0 {
			l.mu.Lock()
			if l.bySrc[src] >= l.perIP {
				l.mu.Unlock()
				l.refused.Add(1) // before the close a client may see
				c.Close()
				l.freeSlot()
				l.logRate.Do(func() {
					l.log.Warn("too many HTTP connections from one address: closing new ones", "source", src, "max_http_conns_per_ip", l.perIP, "refused_total", l.refused.Load())
				})
				continue
			}
			l.bySrc[src]++
			l.mu.Unlock()
		}
		return &httpLimitConn{Conn: c, l: l, src: src}, nil
	}
}

// Close closes the listener and unblocks a waiting Accept.
func (l *httpLimitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *httpLimitListener) freeSlot() {
	if l.slots != nil {
		<-l.slots
	}
}

// release gives back what an accepted connection held.
func (l *httpLimitListener) release(src string) {
	if l.perIP > 0 {
		l.mu.Lock()
		if l.bySrc[src]--; l.bySrc[src] <= 0 {
			delete(l.bySrc, src)
		}
		l.mu.Unlock()
	}
	l.freeSlot()
}

// httpLimitConn gives its slot back on its first Close.
type httpLimitConn struct {
	net.Conn
	l    *httpLimitListener
	src  string
	once sync.Once
}

func (c *httpLimitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// httpSource names the source a per-address limit counts: the IPv4
// address (IPv4-mapped IPv6 ones unmapped) or the /64 of an IPv6 address,
// as the nodes and the sign-in limit count it.
func httpSource(a net.Addr) string {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	} else {
		return a.String()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}
