package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/service/forwarding"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// Buffer sizes of the raw client: large enough for a whole maximal frame,
// so that a reader can look at a frame in place and a sender never splits
// one across writes.
const (
	rawReadBuffer  = 128 << 10
	rawWriteBuffer = 128 << 10
)

// The well-known hub services.
var (
	echoService       = routing.LocalAddress("echo_service")
	forwardingService = routing.LocalAddress(forwarding.ServiceAddress)
)

// fakeForwarder stands, in the baselines' frames, for the hub forwarder's
// 8-hex address, so that the bytes on the wire are the same length.
var fakeForwarder = routing.LocalAddress("00000000")

// localName returns a load generator worker name: 8 characters, like the
// hub's aliases.
func localName(kind byte, i int) routing.Address {
	return routing.LocalAddress(fmt.Sprintf("%c%07d", kind, i))
}

// readMode is what a raw reader does with each frame.
type readMode int

const (
	readComplete readMode = iota // count a completion, time it by its stamp
	readReply                    // write the frame back along its return route
	readDiscard                  // drop it
)

// rawSetup connects raw clients to the target, starting the baseline
// servers the target needs.
func rawSetup(ctx context.Context, r *run) error {
	cfg := r.cfg
	echoLike := cfg.Scenario == Echo || cfg.Scenario == Secure
	var addr string
	var pairs *PairRelay // in process: its accepts can be waited for
	var sink net.Listener
	var err error
	switch cfg.Target {
	case TargetHub:
		addr = cfg.Hub
	case TargetRelay:
		kind := ServerPair
		if echoLike {
			kind = ServerRelayEcho
		}
		if addr, pairs, err = r.startServer(ctx, kind); err != nil {
			return err
		}
	case TargetPlain:
		kind := ServerFramePair
		if echoLike {
			kind = ServerFrameEcho
		}
		if addr, pairs, err = r.startServer(ctx, kind); err != nil {
			return err
		}
	case TargetDirect:
		if echoLike {
			if addr, _, err = r.startServer(ctx, ServerEcho); err != nil {
				return err
			}
		} else {
			if sink, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return fmt.Errorf("loadgen: %w", err)
			}
			r.onClose(func() { sink.Close() })
			addr = sink.Addr().String()
		}
	}
	for i := range cfg.Clients {
		c := r.newClient()
		if echoLike {
			nc, err := dial(ctx, addr, nil)
			if err != nil {
				return err
			}
			r.conn(nc)
			f, err := newFrame(routing.Route{echoService}, routing.Route{localName('c', i)}, cfg.Size)
			if err != nil {
				return err
			}
			r.goroutine(func() { r.readRaw(nc, c, readComplete, nil) })
			r.sender(func() { r.sendRaw(nc, c, f) })
			continue
		}
		recvName, sendName := localName('r', i), localName('s', i)
		var rc, sc net.Conn
		fwd := fakeForwarder
		switch cfg.Target {
		case TargetHub:
			if rc, err = dial(ctx, addr, nil); err != nil {
				return err
			}
			r.conn(rc)
			if fwd, err = registerRaw(rc, recvName); err != nil {
				return err
			}
			if sc, err = dial(ctx, addr, nil); err != nil {
				return err
			}
			r.conn(sc)
		case TargetRelay, TargetPlain:
			// The relay pairs connections in the order it accepts them:
			// the receiver's first.
			if rc, err = dial(ctx, addr, nil); err != nil {
				return err
			}
			r.conn(rc)
			if err := pairs.waitAccepted(ctx); err != nil {
				return err
			}
			if sc, err = dial(ctx, addr, nil); err != nil {
				return err
			}
			r.conn(sc)
			if err := pairs.waitAccepted(ctx); err != nil {
				return err
			}
			if pairs == nil {
				// A relay in another process: check the pairing.
				if err := probePair(sc, rc, i); err != nil {
					return err
				}
			}
		case TargetDirect:
			if sc, err = dial(ctx, addr, nil); err != nil {
				return err
			}
			r.conn(sc)
			if rc, err = sink.Accept(); err != nil {
				return fmt.Errorf("loadgen: %w", err)
			}
			r.conn(rc)
		}
		f, err := newFrame(routing.Route{fwd}, routing.Route{sendName}, cfg.Size)
		if err != nil {
			return err
		}
		if cfg.Reply {
			from := encodeRoute(routing.Route{recvName})
			r.goroutine(func() { r.readRaw(rc, c, readReply, from) })
			r.goroutine(func() { r.readRaw(sc, c, readComplete, nil) })
		} else {
			r.goroutine(func() { r.readRaw(rc, c, readComplete, nil) })
			r.goroutine(func() { r.readRaw(sc, c, readDiscard, nil) })
		}
		r.sender(func() { r.sendRaw(sc, c, f) })
	}
	return nil
}

// startServer starts a baseline server, in a child process with
// Config.StartServer, else in this one, until the run ends. It returns
// its address, and for an in-process PairRelay the relay.
func (r *run) startServer(ctx context.Context, kind ServerKind) (string, *PairRelay, error) {
	if r.cfg.StartServer != nil {
		c, err := r.cfg.StartServer(ctx, kind)
		if err != nil {
			return "", nil, err
		}
		r.onClose(func() { c.Close() })
		r.server = c.Process
		return c.Addr, nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("loadgen: %w", err)
	}
	var pairs *PairRelay
	switch kind {
	case ServerPair:
		pairs = newPairRelay()
	case ServerFramePair:
		pairs = NewFramePairRelay()
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if pairs != nil {
			go func() { <-sctx.Done(); pairs.Close() }()
			pairs.Serve(ln)
			return
		}
		ServeBaseline(sctx, kind, ln)
	}()
	r.onClose(func() { cancel(); <-done })
	return ln.Addr().String(), pairs, nil
}

// probePair checks that what sc sends reaches rc, with a frame the sender
// stamps with i, before the run: a relay in another process pairs
// connections in the order it accepts them.
func probePair(sc, rc net.Conn, i int) error {
	f, err := newFrame(routing.Route{fakeForwarder}, routing.Route{localName('p', i)}, MinSize)
	if err != nil {
		return err
	}
	if _, err := sc.Write(f.append(nil, int64(i))); err != nil {
		return fmt.Errorf("loadgen: probing relay pair %d: %w", i, err)
	}
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	body, err := readOneFrame(rc)
	if err != nil {
		return fmt.Errorf("loadgen: probing relay pair %d: %w", i, err)
	}
	_, payload, err := parseBody(body)
	if ts, ok := stamp(payload); err != nil || !ok || ts != int64(i) {
		return fmt.Errorf("loadgen: the relay paired connections out of order (pair %d)", i)
	}
	return nil
}

// registerRaw registers a forwarder for the worker local over nc, as
// forwarding.Register does, and returns the forwarder's address.
func registerRaw(nc net.Conn, local routing.Address) (routing.Address, error) {
	m := routing.TransportMessage{
		Version: routing.Version,
		Onward:  routing.Route{forwardingService},
		Return:  routing.Route{local},
		Payload: bare.AppendString(nil, forwarding.RegisterPayload),
	}
	b, err := tcp.AppendFrame(nil, &m, 0)
	if err != nil {
		return routing.Address{}, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(b); err != nil {
		return routing.Address{}, fmt.Errorf("loadgen: registering: %w", err)
	}
	body, err := readOneFrame(nc)
	if err != nil {
		return routing.Address{}, fmt.Errorf("loadgen: waiting for the registration: %w", err)
	}
	reply, _, err := routing.DecodeMessage(body)
	if err != nil {
		return routing.Address{}, fmt.Errorf("loadgen: registration reply: %w", err)
	}
	fwd, ok := reply.Return.Recipient()
	if !ok {
		return routing.Address{}, fmt.Errorf("loadgen: registration reply without a forwarder address")
	}
	return fwd, nil
}

// readOneFrame reads exactly one frame from nc, with no read-ahead.
func readOneFrame(nc net.Conn) ([]byte, error) {
	var hdr [tcp.FrameHeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil, err
	}
	return body, nil
}

// clockEvery is how many messages a raw sender stamps, or a raw reader
// times, with one reading of the clock, which it also reads after every
// wait: reading it per message would cost the client more than the hub
// spends on some messages. Frames read in one batch arrived together, and
// frames written in one batch leave together, so little is lost.
const clockEvery = 16

// sendRaw is a raw client's send loop: it stamps pre-encoded frames into a
// bufio.Writer, which it flushes only when the window is full (the loop
// would block) or the buffer is.
func (r *run) sendRaw(nc net.Conn, c *client, f frame) {
	bw := bufio.NewWriterSize(nc, rawWriteBuffer)
	var now int64
	n := 0
	flush := func() error {
		n = 0 // read the clock again after the wait
		return bw.Flush()
	}
	for {
		ok, err := c.acquire(c.inflight, flush)
		if err != nil {
			r.fail("write", err)
			return
		}
		if !ok {
			if err := bw.Flush(); err != nil {
				r.fail("write", err)
			}
			return
		}
		if bw.Available() < len(f.b) {
			if err := flush(); err != nil {
				r.fail("write", err)
				return
			}
		}
		if n%clockEvery == 0 {
			now = r.now()
		}
		n++
		bw.Write(f.append(bw.AvailableBuffer(), now))
		c.sent.Add(1)
	}
}

// readRaw is a raw client's reader: it looks at each frame in place in its
// buffer, finds the payload (and, to reply, the return route) without
// decoding the routes, and publishes completions in batches, before it
// would block.
func (r *run) readRaw(nc net.Conn, c *client, mode readMode, from []byte) {
	br := bufio.NewReaderSize(nc, rawReadBuffer)
	var bw *bufio.Writer
	if mode == readReply {
		bw = bufio.NewWriterSize(nc, rawWriteBuffer)
	}
	var pending uint64
	var now int64
	clk := 0
	// idle runs before a read that may block.
	idle := func() error {
		clk = 0 // read the clock again after the wait
		c.publish(pending)
		pending = 0
		if bw != nil && bw.Buffered() > 0 {
			return bw.Flush()
		}
		return nil
	}
	for {
		if br.Buffered() < tcp.FrameHeaderSize || pending >= 256 {
			if err := idle(); err != nil {
				r.fail("write reply", err)
				return
			}
		}
		hdr, err := br.Peek(tcp.FrameHeaderSize)
		if err != nil {
			r.readFailed(err)
			return
		}
		n := tcp.FrameHeaderSize + int(binary.BigEndian.Uint16(hdr))
		if br.Buffered() < n {
			if err := idle(); err != nil {
				r.fail("write reply", err)
				return
			}
		}
		b, err := br.Peek(n)
		if err != nil {
			r.readFailed(err)
			return
		}
		ret, payload, err := parseBody(b[tcp.FrameHeaderSize:])
		if err != nil {
			r.fail("read", err)
			return
		}
		switch mode {
		case readComplete:
			ts, ok := stamp(payload)
			if !ok {
				r.fail("read", errMalformed)
				return
			}
			if clk%clockEvery == 0 {
				now = r.now()
			}
			clk++
			c.complete(now, ts)
			pending++
		case readReply:
			if bw.Available() < n+len(from) {
				if err := bw.Flush(); err != nil {
					r.fail("write reply", err)
					return
				}
			}
			bw.Write(appendReply(bw.AvailableBuffer(), ret, from, payload))
		}
		br.Discard(n)
	}
}

func (r *run) readFailed(err error) {
	if err == io.EOF || expectedClose(err) {
		if !r.closing.Load() && !r.stopping.Load() {
			r.fail("read", fmt.Errorf("connection closed by the peer"))
		}
		return
	}
	r.fail("read", err)
}
