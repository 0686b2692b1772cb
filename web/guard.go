package web

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrBadPublicURL is returned by New for a Config.PublicURL that is not an
// http or https URL with a host.
var ErrBadPublicURL = errors.New("web: the public URL must be an http or https URL with a host")

// hostCheck says which Host headers the handler answers: the public URL's
// host, and loopback names when allowed. Anything else is a request meant
// for another site (DNS rebinding: a hostile page whose name resolves to
// 127.0.0.1) and gets 421 Misdirected Request.
type hostCheck struct {
	host     string // the public URL's host name, lower case
	port     string // its port, "" for the scheme's default
	defPort  string // the scheme's default port
	loopback bool
}

func newHostCheck(publicURL string, loopback bool) (*hostCheck, error) {
	if publicURL == "" {
		return &hostCheck{loopback: true}, nil
	}
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ErrBadPublicURL
	}
	hc := &hostCheck{host: strings.ToLower(u.Hostname()), port: u.Port(), defPort: "80", loopback: loopback}
	if u.Scheme == "https" {
		hc.defPort = "443"
	}
	return hc, nil
}

// isLoopbackName reports whether host (without port) is a name every
// browser resolves to this machine only.
func isLoopbackName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

func (hc *hostCheck) ok(hostHeader string) bool {
	host, port, err := net.SplitHostPort(hostHeader)
	if err != nil {
		host, port = hostHeader, ""
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if hc.loopback && isLoopbackName(host) {
		return true
	}
	if hc.host == "" || strings.TrimSuffix(host, ".") != strings.Trim(hc.host, "[]") {
		return false
	}
	if port == "" {
		port = hc.defPort
	}
	want := hc.port
	if want == "" {
		want = hc.defPort
	}
	return port == want
}

// methodNotAllowed answers 405 with Allow when another method of the path
// has a handler, and returns false otherwise (the caller answers 404).
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) bool {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" && pattern != "/api/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return false
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	msg := "Method " + r.Method + " is not allowed here; use " + strings.Join(allow, " or ") + "."
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSONError(w, http.StatusMethodNotAllowed, msg)
	} else {
		http.Error(w, msg, http.StatusMethodNotAllowed)
	}
	return true
}

// noListing serves files of fsys and answers 404 for directories, so
// /static/ lists nothing.
func noListing(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" || strings.HasSuffix(name, "/") {
			http.NotFound(w, r)
			return
		}
		if st, err := fs.Stat(fsys, name); err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// limiter is a token bucket per key (a source address), bounded in
// memory: when maxKeys buckets exist, the ones full again (idle) are
// dropped, and if none is, new keys share one overflow bucket.
type limiter struct {
	every time.Duration // one token per every
	burst int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time // when the table was last swept for idle buckets
}

const limiterMaxKeys = 10000

func newLimiter(perHour, burst int) *limiter {
	if perHour <= 0 {
		return nil
	}
	every := time.Hour / time.Duration(perHour)
	return &limiter{every: every, burst: burst, buckets: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Every(every), burst)}
}

// allow takes a token for key, or reports how long until one is free.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		// A full table is swept at most once a second: a sweep visits
		// every bucket, and under a flood from many sources every request
		// would otherwise pay for one, holding the lock.
		if len(l.buckets) >= limiterMaxKeys && now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = now
			for k, v := range l.buckets {
				if v.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) < limiterMaxKeys {
			b = rate.NewLimiter(rate.Every(l.every), l.burst)
			l.buckets[key] = b
		} else {
			b = l.overflow
		}
	}
	l.mu.Unlock()
	rv := b.ReserveN(now, 1)
	if d := rv.DelayFrom(now); d > 0 {
		rv.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sourceIP names the request's source as the sign-in limit counts it: the
// IPv4 address (IPv4-mapped IPv6 ones unmapped), or the /64 of an IPv6
// address. One subscriber is given a whole /64 (2^64 addresses), so
// counting single IPv6 addresses would give an attacker a fresh limit per
// request and let them fill the limiter's table, pushing every new source
// onto its shared overflow bucket (the data plane counts sources the same
// way, see transport/tcp's sourceKey). The connection's address is used,
// never X-Forwarded-For, which the client writes.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// retryAfter formats a wait as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// waitWords says a wait in plain words.
func waitWords(d time.Duration) string {
	switch {
	case d <= time.Minute:
		return "a minute"
	case d < time.Hour:
		return strconv.Itoa(int((d+time.Minute-1)/time.Minute)) + " minutes"
	}
	return "an hour"
}
