package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// ErrProxyRefused is the read error of a connection that presented a
// PROXY protocol header without coming from a live instance of the
// cluster: it is closed.
var ErrProxyRefused = errors.New("cluster: PROXY header from a source that is not a live instance")

// sigV2 and sigV1 start PROXY protocol headers (version 2 and 1).
var (
	sigV2 = proxyproto.SIGV2
	sigV1 = []byte("PROXY ")
)

// headerTimeout bounds the wait for a relayed connection's PROXY header.
const headerTimeout = 5 * time.Second

// sniff decides from a connection's first bytes whether they start a
// PROXY header. prefix holds the bytes read so far; it returns more ==
// true while they are a proper prefix of a signature.
func sniff(prefix []byte) (proxy, more bool) {
	for _, sig := range [][]byte{sigV2, sigV1} {
		n := min(len(prefix), len(sig))
		if bytes.Equal(prefix[:n], sig[:n]) {
			if n == len(sig) {
				return true, false
			}
			more = true
		}
	}
	return false, more
}

// guardConn refuses a PROXY header at the start of what it reads (a
// client posing as a relaying instance, or a second header after ours);
// otherwise it reads through, after the bytes it held back to decide. A
// 2021 Ockam frame starts with its length and version 1, so the decision
// comes with the first bytes of the first frame.
type guardConn struct {
	net.Conn
	remote  net.Addr  // the client's address; nil means Conn's
	r       io.Reader // reads the connection (after a PROXY header, a bufio.Reader)
	decided bool
	held    []byte
	refused func() // called on a refused header, before the connection closes
}

func (g *guardConn) RemoteAddr() net.Addr {
	if g.remote != nil {
		return g.remote
	}
	return g.Conn.RemoteAddr()
}

func (g *guardConn) Read(b []byte) (int, error) {
	for !g.decided {
		proxy, more := sniff(g.held)
		if proxy {
			if g.refused != nil {
				g.refused()
			}
			g.Conn.Close()
			return 0, ErrProxyRefused
		}
		if !more && len(g.held) > 0 || len(b) == 0 {
			g.decided = true
			break
		}
		var buf [12]byte
		n, err := g.r.Read(buf[:12-len(g.held)])
		g.held = append(g.held, buf[:n]...)
		if err != nil {
			if len(g.held) == 0 {
				return 0, err
			}
			if p, _ := sniff(g.held); !p {
				g.decided = true
				break
			}
		}
	}
	if len(g.held) > 0 {
		n := copy(b, g.held)
		g.held = g.held[n:]
		return n, nil
	}
	return g.r.Read(b)
}

// readProxy reads the connection's first bytes: a PROXY v2 header (the
// relay of a live instance) gives the client's address and the reader of
// what follows; anything else is held back for the hub. A header that
// cannot be parsed, or carries no TCP source address, is an error.
func readProxy(c net.Conn) (g *guardConn, relayed bool, err error) {
	c.SetReadDeadline(time.Now().Add(headerTimeout))
	defer c.SetReadDeadline(time.Time{})
	var held []byte
	for {
		proxy, more := sniff(held)
		if proxy {
			break
		}
		if !more && len(held) > 0 {
			return &guardConn{Conn: c, r: c, held: held}, false, nil
		}
		var buf [12]byte
		n, err := c.Read(buf[:12-len(held)])
		held = append(held, buf[:n]...)
		if err != nil {
			return nil, false, err
		}
	}
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(held), c))
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, false, err
	}
	if _, tcp := h.SourceAddr.(*net.TCPAddr); h.Version != 2 || !tcp {
		return nil, false, proxyproto.ErrInvalidAddress
	}
	return &guardConn{Conn: c, r: br, remote: h.SourceAddr}, true, nil
}

// vlistener is a node's listener in a cluster: the front door's accept
// loop hands it the connections it serves here.
type vlistener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	drop func() // detaches it from its door
}

func (l *vlistener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *vlistener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.drop()
	})
	return nil
}

func (l *vlistener) Addr() net.Addr { return l.addr }

// deliver hands c to the node; false if the listener is closed.
func (l *vlistener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// relay copies between client c and owner o. The client's end of input
// is passed on (half-close); the owner's end ends the relay, as the node
// closing the connection would.
func relay(c, o net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(o, c)
		if tc, ok := o.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
	}()
	io.Copy(c, o)
	c.Close()
	o.Close()
	<-done
}
