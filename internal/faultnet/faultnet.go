// Package faultnet is a fault-injecting TCP proxy for tests: it sits between
// clients and a server on 127.0.0.1 and can cut the link, delay or throttle
// traffic, or black-hole it. Only _test.go files import it.
package faultnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards every connection it accepts to Target. Its methods are safe
// for concurrent use.
type Proxy struct {
	Target string
	ln     net.Listener

	mu       sync.Mutex
	cut      bool
	blackout bool
	delay    time.Duration
	rate     int // bytes per second per direction; 0 = unlimited
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	closed   bool
}

// Listen starts a proxy on 127.0.0.1 to target.
func Listen(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the proxy's address, to give to clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Blackout stops passing bytes (they are held, not lost) without closing
// anything, like a network partition, until Restore.
func (p *Proxy) Blackout() {
	p.mu.Lock()
	p.blackout = true
	p.mu.Unlock()
}

// Restore undoes Cut and Blackout.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut, p.blackout = false, false
	p.mu.Unlock()
}

// SetDelay delays every chunk of data by d in each direction.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// SetRate throttles each direction of each connection to bytesPerSec
// (0 = unlimited).
func (p *Proxy) SetRate(bytesPerSec int) {
	p.mu.Lock()
	p.rate = bytesPerSec
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.cut || p.closed
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.Target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			continue
		}
		p.wg.Go(func() { p.pipe(s, c); s.Close(); c.Close(); p.untrack(c, s) })
		p.wg.Go(func() { p.pipe(c, s); s.Close(); c.Close() })
	}
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cut {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

// pipe copies src to dst applying the current faults.
func (p *Proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				p.mu.Lock()
				blackout, delay, rate := p.blackout, p.delay, p.rate
				p.mu.Unlock()
				if !blackout {
					if delay > 0 {
						time.Sleep(delay)
					}
					if rate > 0 {
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					break
				}
				time.Sleep(10 * time.Millisecond) // held during a blackout
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
