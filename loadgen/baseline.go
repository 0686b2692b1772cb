package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// ServerKind names a baseline server, for ServeBaseline.
type ServerKind string

// The baseline servers.
const (
	// ServerEcho is an EchoServer.
	ServerEcho ServerKind = "echo"
	// ServerRelayEcho is a Relay in front of an EchoServer in the same
	// process, as a hub holds its echo_service.
	ServerRelayEcho ServerKind = "relay-echo"
	// ServerPair is a PairRelay.
	ServerPair ServerKind = "pair"
	// ServerFrameEcho is a FrameEchoServer.
	ServerFrameEcho ServerKind = "frame-echo"
	// ServerFramePair is a PairRelay that relays frames as FrameRelay does.
	ServerFramePair ServerKind = "frame-pair"
)

// ServeBaseline serves the baseline server kind on l until ctx ends, then
// closes it and returns nil. It is what a child process started through
// Config.StartServer runs (`ockamhub bench --serve-baseline KIND`).
func ServeBaseline(ctx context.Context, kind ServerKind, l net.Listener) error {
	var serve func(net.Listener) error
	var closers []func() error
	switch kind {
	case ServerEcho:
		es := &EchoServer{}
		serve, closers = es.Serve, []func() error{es.Close}
	case ServerRelayEcho:
		el, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l.Close()
			return err
		}
		es := &EchoServer{}
		echoDone := make(chan struct{})
		go func() { defer close(echoDone); es.Serve(el) }()
		rl := &Relay{Upstream: el.Addr().String()}
		serve, closers = rl.Serve, []func() error{rl.Close, es.Close, func() error { <-echoDone; return nil }}
	case ServerPair:
		p := newPairRelay()
		serve, closers = p.Serve, []func() error{p.Close}
	case ServerFrameEcho:
		fs := &FrameEchoServer{}
		serve, closers = fs.Serve, []func() error{fs.Close}
	case ServerFramePair:
		p := NewFramePairRelay()
		serve, closers = p.Serve, []func() error{p.Close}
	default:
		l.Close()
		return fmt.Errorf("loadgen: unknown baseline server %q", kind)
	}
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	select {
	case <-ctx.Done():
	case err := <-done:
		for _, c := range closers {
			c()
		}
		return err
	}
	for _, c := range closers {
		c()
	}
	<-done
	return nil
}

// ErrServerClosed is returned by the baseline servers' Serve after Close.
var ErrServerClosed = errors.New("loadgen: server closed")

// conns tracks a server's listeners and connections so that Close can
// close them all and wait for their goroutines.
type conns struct {
	mu     sync.Mutex
	ls     map[net.Listener]struct{}
	cs     map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (s *conns) addListener(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return false
	}
	if s.ls == nil {
		s.ls = make(map[net.Listener]struct{})
	}
	s.ls[l] = struct{}{}
	return true
}

// add tracks c, and runs f (if not nil) in a goroutine that close waits
// for; once closed, it closes c instead and returns false.
func (s *conns) add(c net.Conn, f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	if s.cs == nil {
		s.cs = make(map[net.Conn]struct{})
	}
	s.cs[c] = struct{}{}
	if f != nil {
		s.wg.Go(f) // under mu: never concurrent with close's Wait at zero
	}
	return true
}

// spawn runs f in a goroutine that close waits for, unless closed.
func (s *conns) spawn(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.wg.Go(f)
	}
}

func (s *conns) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.cs, c)
	s.mu.Unlock()
	c.Close()
}

func (s *conns) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *conns) close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for l := range s.ls {
			l.Close()
		}
		for c := range s.cs {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// accept runs handle in a goroutine for every connection l accepts, until
// Close.
func (s *conns) accept(l net.Listener, handle func(net.Conn)) error {
	if !s.addListener(l) {
		return ErrServerClosed
	}
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			return err
		}
		s.add(c, func() { handle(c) })
	}
}

// EchoServer is the baseline echo server: it writes back every frame it
// reads, unchanged, and does nothing else. Like the raw client, it reads
// through a bufio.Reader and writes through a bufio.Writer that it flushes
// when no further input is buffered. Frames are not decoded; only the u16
// length is read.
//
// The zero value is ready to use; it is safe for concurrent use.
type EchoServer struct {
	c conns
}

// Serve serves connections accepted on l until Close, then returns
// ErrServerClosed.
func (s *EchoServer) Serve(l net.Listener) error {
	return s.c.accept(l, func(nc net.Conn) {
		defer s.c.remove(nc)
		br := bufio.NewReaderSize(nc, rawReadBuffer)
		bw := bufio.NewWriterSize(nc, rawWriteBuffer)
		for {
			b, ok := peekFrame(br, bw)
			if !ok {
				return
			}
			n := len(b)
			if bw.Available() < n {
				if bw.Flush() != nil {
					return
				}
			}
			bw.Write(b)
			br.Discard(n)
		}
	})
}

// Close closes the listeners and connections and waits for them.
func (s *EchoServer) Close() error { return s.c.close() }

// Relay is the baseline relay hop: for every connection it accepts it
// dials one connection to Upstream and copies bytes both ways with io.Copy
// (on Linux, TCP to TCP, that is splice(2)), as a minimal Go TCP proxy does.
// It never looks at the bytes.
//
// Set Upstream before Serve; Relay is then safe for concurrent use.
type Relay struct {
	// Upstream is the HOST:PORT every connection is relayed to.
	Upstream string
	c        conns
}

// Serve serves connections accepted on l until Close, then returns
// ErrServerClosed.
func (r *Relay) Serve(l net.Listener) error {
	return r.c.accept(l, func(down net.Conn) {
		defer r.c.remove(down)
		up, err := net.Dial("tcp", r.Upstream)
		if err != nil {
			return
		}
		if !r.c.add(up, nil) {
			return
		}
		defer r.c.remove(up)
		pipe(down, up)
	})
}

// Close closes the listeners and connections and waits for them.
func (r *Relay) Close() error { return r.c.close() }

// pipe copies a to b and b to a until either side ends, then closes both.
func pipe(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, a)
		b.Close()
		a.Close()
	}()
	io.Copy(a, b)
	a.Close()
	b.Close()
	<-done
}

// PairRelay is the baseline relay hop between two clients: it pairs the
// connections it accepts in order (the first with the second, the third
// with the fourth, ...) and copies bytes both ways between the two of each
// pair with io.Copy. It stands for a hub's forwarder without the hub: one
// process, one hop, the same bytes.
//
// Create one with NewPairRelay; it is safe for concurrent use.
type PairRelay struct {
	relay    func(a, b net.Conn) // pipe, or framePipe
	c        conns
	mu       sync.Mutex
	waiting  net.Conn
	accepted chan struct{} // one token per accepted connection
}

// NewPairRelay returns a PairRelay.
func NewPairRelay() *PairRelay { return newPairRelay() }

func newPairRelay() *PairRelay {
	return &PairRelay{relay: pipe, accepted: make(chan struct{}, 1<<16)}
}

// NewFramePairRelay returns a PairRelay that, instead of copying bytes,
// relays frames between the two connections of a pair as a plain Go
// program would: each connection's reading goroutine decodes every frame,
// rewrites its routes (pops the onward route's head when more follows,
// prepends an 8-hex stand-in for a connection alias to the return route:
// the work of a hub's forwarder and alias), encodes it and writes it to the
// other connection itself. It stands for a hub's forwarder in a plain
// program: a round trip through it crosses two such hops.
func NewFramePairRelay() *PairRelay {
	p := newPairRelay()
	p.relay = framePipe
	return p
}

// Serve serves connections accepted on l until Close, then returns
// ErrServerClosed.
func (p *PairRelay) Serve(l net.Listener) error {
	if !p.c.addListener(l) {
		return ErrServerClosed
	}
	for {
		nc, err := l.Accept()
		if err != nil {
			if p.c.isClosed() {
				return ErrServerClosed
			}
			return err
		}
		if !p.c.add(nc, nil) {
			continue
		}
		p.mu.Lock()
		first := p.waiting
		if first == nil {
			p.waiting = nc
		} else {
			p.waiting = nil
		}
		p.mu.Unlock()
		select {
		case p.accepted <- struct{}{}:
		default:
		}
		if first == nil {
			continue
		}
		p.c.spawn(func() {
			defer p.c.remove(first)
			defer p.c.remove(nc)
			p.relay(first, nc)
		})
	}
}

// waitAccepted waits until the relay has accepted one more connection; for
// a nil PairRelay (a relay in another process) it returns at once.
func (p *PairRelay) waitAccepted(ctx context.Context) error {
	if p == nil {
		return nil
	}
	select {
	case <-p.accepted:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and connections and waits for them.
func (p *PairRelay) Close() error { return p.c.close() }

// FrameEchoServer is the plain frame-echo baseline: what a hub's
// echo_service does, written as a plain Go server. Its reading goroutine
// decodes every frame (routing.DecodeMessage), swaps the routes (the reply
// goes along the return route, from the first address of the onward route),
// encodes the reply and writes it back itself, through a bufio.Writer
// flushed when no further frame is buffered.
//
// The zero value is ready to use; it is safe for concurrent use.
type FrameEchoServer struct {
	c conns
}

// Serve serves connections accepted on l until Close, then returns
// ErrServerClosed.
func (s *FrameEchoServer) Serve(l net.Listener) error {
	return s.c.accept(l, func(nc net.Conn) {
		defer s.c.remove(nc)
		relayFrames(nc, nc, echoRoutes)
	})
}

// Close closes the listeners and connections and waits for them.
func (s *FrameEchoServer) Close() error { return s.c.close() }

// echoRoutes turns a request into its echo reply.
func echoRoutes(m *routing.TransportMessage) {
	m.Onward, m.Return = m.Return, m.Onward[:min(len(m.Onward), 1)]
}

// aliasStandIn is the frame relay's stand-in for a hub's connection alias.
var aliasStandIn = routing.LocalAddress("00000000")

// relayRoutes rewrites a relayed message's routes as a hub's forwarder and
// connection alias would.
func relayRoutes(m *routing.TransportMessage) {
	if len(m.Onward) > 1 {
		m.Onward = m.Onward[1:]
	}
	m.Return = m.Return.Prepend(aliasStandIn)
}

// framePipe relays frames both ways between a and b until either side
// ends, then closes both.
func framePipe(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		relayFrames(a, b, relayRoutes)
		b.Close()
		a.Close()
	}()
	relayFrames(b, a, relayRoutes)
	a.Close()
	b.Close()
	<-done
}

// peekFrame returns the next whole frame (header included) buffered in br,
// without consuming it, first flushing bw whenever the read may block, so
// that nothing written waits behind a read. It reports false when br or bw
// fails.
func peekFrame(br *bufio.Reader, bw *bufio.Writer) ([]byte, bool) {
	if br.Buffered() < tcp.FrameHeaderSize && bw.Buffered() > 0 && bw.Flush() != nil {
		return nil, false
	}
	hdr, err := br.Peek(tcp.FrameHeaderSize)
	if err != nil {
		return nil, false
	}
	n := tcp.FrameHeaderSize + int(binary.BigEndian.Uint16(hdr))
	if br.Buffered() < n && bw.Buffered() > 0 && bw.Flush() != nil {
		return nil, false
	}
	b, err := br.Peek(n)
	return b, err == nil
}

// relayFrames reads frames from in, decodes each, rewrites its routes,
// encodes it and writes it to out, all in the calling goroutine; it flushes
// out when no further frame is buffered. It returns when in or out fails,
// or at a frame that does not decode.
func relayFrames(in, out net.Conn, rewrite func(*routing.TransportMessage)) {
	br := bufio.NewReaderSize(in, rawReadBuffer)
	bw := bufio.NewWriterSize(out, rawWriteBuffer)
	for {
		b, ok := peekFrame(br, bw)
		if !ok {
			return
		}
		n := len(b)
		m, _, err := routing.DecodeMessage(b[tcp.FrameHeaderSize:])
		if err != nil {
			return
		}
		rewrite(&m)
		if bw.Available() < tcp.FrameHeaderSize+m.EncodedLen() {
			if bw.Flush() != nil {
				return
			}
		}
		f, err := tcp.AppendFrame(bw.AvailableBuffer(), &m, 0)
		if err != nil {
			return
		}
		bw.Write(f)
		br.Discard(n)
	}
}
