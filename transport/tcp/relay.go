package tcp

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Relaying small frames by their bytes (with Config.CutThrough): a frame
// that arrived whole, whose message only crosses the node (through inline
// route rewriters such as a hub's forwarders, to another connection's alias
// or address), is queued on that connection as the frame it will be
// written as, without decoding the message into routes, calling the
// workers, or encoding it again when it is written:
//
//   - the head of the frame (its version and routes) is compared with the
//     last head this reader decoded; a stream of frames with the same
//     routes (a sender talking to one forwarder) is decoded once, by the
//     same decoder as every frame, and any other head is decoded as usual;
//   - where the message goes is resolved on every frame (node.Resolve), as
//     routing would deliver it; the outgoing head (version, the onward
//     route it leaves with, the return route with this connection's
//     address at its head) is encoded once per destination and route;
//   - the outgoing frame (that head, the payload's length, the payload) is
//     queued if the destination's queue has room now; the message is then
//     accounted for as routing would have (node.Commit).
//
// Anything else, and any doubt (a heartbeat, an unknown address, a worker
// that is not a rewriter or an alias, a full or closed queue, a frame too
// large once re-encoded), leaves the frame to the usual path, which reports
// and counts what it finds. The bytes written are those the usual path
// writes: the head is encoded by the same encoder, the payload's length
// with a minimal varint, and trailing bytes after the payload are dropped.

// relayCache is a reader's last decoded head and its last outgoing head.
type relayCache struct {
	// key is the version and routes of the last head decoded, as they
	// arrived; m is the message decoded from them (with the connection's
	// address at the head of the return route, and no payload). Neither
	// is ever modified.
	key []byte
	m   routing.TransportMessage

	// head is the outgoing head (version, onward, return) last encoded
	// for m, for destination dst and onward route onward (the very slice
	// a rewriter returned: routes returned by RewriteOnward are never
	// modified, so the same slice means the same addresses).
	head    []byte
	dst     *conn
	onward  routing.Route
	headFor routing.Route // the return route head was encoded with (m's)

	// res is where m goes, as Resolve found it, while resolved (checked
	// again on every frame: node.Recheck).
	res      node.Resolution
	resolved bool

	sample uint32 // counts relayed frames, to time one in latencySampleEvery

	// stage holds frames relayed to dst as res says, not yet queued, and
	// stageIn their incoming bytes (see flushStage).
	stage   []staged
	stageIn uint64

	// slab is the lease of the slab relayed frames are cut from, and
	// slabFree what is left of it (see relayAlloc).
	slab     *lease
	slabFree []byte
	slabCut  int32 // frames cut from slab whose references are not taken yet
}

// After maxDeclined frames in a row whose routes led where relay does not
// go (an echo request, an unknown address), the next relaySkip frames go
// to the usual path without a look, and so does every further relaySkip
// while the frame looked at between them is declined too: a connection
// whose traffic is not relayed pays for a look at one frame in 65. The
// counts are the reader's (reader.relayDeclined, relaySkip), not the
// cache's, so that they survive the cache being dropped while the reader
// waits: a client with one message in flight idles between its frames,
// and each look at a frame after such a wait decodes its head again.
const (
	maxDeclined = 8
	relaySkip   = 64
)

// verdict is relayFrame's answer.
type verdict uint8

const (
	relayed     verdict = iota
	notThis             // this frame goes the usual way (its size, a full queue...)
	notThisHead         // frames with these routes go the usual way now
)

// relayCaches holds the caches of readers that relay nothing: dropped
// while they wait, taken again on their next frame.
var relayCaches = sync.Pool{New: func() any { return new(relayCache) }}

// putRelayCache returns an idle reader's cache, which holds no stage and
// no slab (flushed and dropped before the reader waits), to the pool.
func putRelayCache(rc *relayCache) {
	*rc = relayCache{}
	relayCaches.Put(rc)
}

// maxRelayRoute bounds the addresses of a route scanned by headEnd.
const maxRelayRoute = 64

// headEnd returns the length of the version and routes at the start of
// body, or -1 when they cannot be scanned (the usual path then says why).
func headEnd(body []byte) int {
	r := bare.NewReader(body)
	if _, err := r.U8(""); err != nil {
		return -1
	}
	for range 2 {
		k, err := r.Uint("")
		if err != nil || k > maxRelayRoute {
			return -1
		}
		for range k {
			if _, err := r.U8(""); err != nil {
				return -1
			}
			if _, err := r.Data(""); err != nil {
				return -1
			}
		}
	}
	return r.Offset()
}

// relay queues the message of the complete frame body (lying in the read
// buffer) on the connection it goes to, as its outgoing frame, and reports
// true; or it does nothing and reports false, leaving the frame to the
// usual path.
func (rd *reader) relay(body []byte) bool {
	if rd.relaySkip > 0 {
		rd.relaySkip--
		return false
	}
	if rd.relayCache == nil {
		rd.relayCache = relayCaches.Get().(*relayCache)
	}
	rd.relayLooks++
	switch rd.relayFrame(body) {
	case relayed:
		rd.relayDeclined = 0
		return true
	case notThisHead:
		if rd.relayDeclined++; rd.relayDeclined >= maxDeclined {
			// One more declined after the skip skips again.
			rd.relayDeclined, rd.relaySkip = maxDeclined-1, relaySkip
		}
	}
	return false
}

func (rd *reader) relayFrame(body []byte) verdict {
	if isHeartbeat(body) {
		return notThis
	}
	c := rd.c
	t := c.t
	rc := rd.relayCache
	end := len(rc.key)
	if end == 0 || len(body) <= end || string(body[:end]) != string(rc.key) {
		if end = headEnd(body); end < 0 {
			return notThis
		}
		// Decoded from a copy with an empty payload, so that the routes
		// never share the read buffer.
		key := make([]byte, end+1)
		copy(key, body[:end])
		m, used, err := routing.DecodeMessageFrom(key, c.addr)
		if err != nil || used != len(key) {
			rc.key, rc.resolved = nil, false
			return notThis
		}
		rc.key, rc.m, rc.resolved = key[:end], m, false
	}
	payloadLen, k := binary.Uvarint(body[end:])
	if k <= 0 || payloadLen > uint64(len(body)-end-k) {
		return notThis
	}
	payload := body[end+k : end+k+int(payloadLen)]

	// A connection named by its TCP address is checked too: it may have
	// been replaced by another under that name (Recheck sees the
	// transport, not its connections). An alias stops with its connection
	// (Recheck sees it).
	if !rc.resolved || (rc.res.Worker == nil && rc.dst.isClosed()) || !t.node.Recheck(&rc.res, rc.m.Onward) {
		if !rd.resolve() {
			return notThisHead
		}
	}
	bodyLen := len(rc.head) + bare.UintLen(payloadLen) + len(payload)
	if bodyLen > t.cfg.MaxFrameSize {
		return notThis
	}
	frame, l := rd.relayAlloc(FrameHeaderSize + bodyLen)
	binary.BigEndian.PutUint16(frame, uint16(bodyLen))
	i := FrameHeaderSize + copy(frame[FrameHeaderSize:], rc.head)
	i += binary.PutUvarint(frame[i:], payloadLen)
	copy(frame[i:], payload)

	if rc.stage == nil {
		rc.stage = (*stagePool.Get().(*[]staged))[:0]
	}
	rc.stage = append(rc.stage, staged{frame: frame, lease: l})
	if rc.sample++; rc.sample%latencySampleEvery == 0 {
		rc.stage[len(rc.stage)-1].at = 1 // timed when queued (flushStage)
	}
	rc.stageIn += uint64(len(body) + FrameHeaderSize)
	if len(rc.stage) == maxStage {
		rd.flushStage()
	}
	return relayed
}

// relaySlabSize is the size of the pooled slabs relayed frames are cut
// from, and relaySlabFrame the largest frame cut from one.
const (
	relaySlabSize  = 32 << 10
	relaySlabFrame = 2 << 10
)

// Slabs come in classes of 4, 8, 16 and 32 KiB (relaySlabSize), one pool
// each: a read that brings a few frames takes a small one.
const (
	minRelaySlab     = 4 << 10
	relaySlabClasses = 4
)

var relaySlabPools [relaySlabClasses]sync.Pool

// relaySlabClass returns the class of the smallest slab of at least want
// bytes, or the largest.
func relaySlabClass(want int) int {
	i := 0
	for i < relaySlabClasses-1 && minRelaySlab<<i < want {
		i++
	}
	return i
}

func getRelaySlab(class int) []byte {
	if p, ok := relaySlabPools[class].Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, minRelaySlab<<class)
}

func putRelaySlab(b []byte) {
	class := relaySlabClass(cap(b))
	b = b[:cap(b)]
	relaySlabPools[class].Put(&b)
}

// relayAlloc returns the memory of a relayed frame of n bytes, and the
// lease that holds it (nil for a frame of its own). Frames are cut from a
// pooled slab lent to them: each queued frame holds a reference until it
// is written, and the reader one while it cuts frames from the slab (until
// it next reads: dropRelaySlab), taken for a stage at once
// (settleRelaySlab); the last release returns the slab to the
// pool, so that relaying allocates, zeroes and collects nothing. Every
// byte of a frame is written before it is queued. A frame never written
// (its connection closed) leaves its slab to the collector.
func (rd *reader) relayAlloc(n int) ([]byte, *lease) {
	if n > relaySlabFrame {
		return make([]byte, n), nil
	}
	rc := rd.relayCache
	if len(rc.slabFree) < n {
		rd.dropRelaySlab()
		// What is left of this read (this frame included) is all the
		// frames cut from this memory can come from: the reader drops it
		// before it reads again. A pooled slab is taken only when they
		// can fill a good part of it; otherwise a buffer of their size
		// (the collector's), so that a few bytes held by a destination
		// that does not read never pin a whole slab (which
		// SendQueueBytes, counting frame bytes, would not see).
		// A slab is at most twice what is wanted: at most three times
		// what the sender sent.
		if want := max(n, (rd.w-rd.r)*3/2); want < minRelaySlab/2 {
			rc.slabFree = make([]byte, want)
		} else {
			buf := getRelaySlab(relaySlabClass(want))
			rc.slab, rc.slabFree = newLease(buf), buf
			rc.slab.relay = true
		}
	}
	b := rc.slabFree[:n:n]
	rc.slabFree = rc.slabFree[n:]
	if rc.slab == nil {
		return b, nil
	}
	rc.slabCut++
	return b, rc.slab
}

// settleRelaySlab takes the references of the frames cut from the slab
// since it last did, at once: before they are queued (flushStage), and
// before the reader gives up its own (dropRelaySlab).
func (rd *reader) settleRelaySlab() {
	if rc := rd.relayCache; rc.slabCut > 0 {
		rc.slab.retainN(rc.slabCut)
		rc.slabCut = 0
	}
}

// dropRelaySlab gives up the reader's reference to the slab it cuts
// relayed frames from.
func (rd *reader) dropRelaySlab() {
	rc := rd.relayCache
	if rc == nil {
		return
	}
	if rc.slab != nil {
		rd.settleRelaySlab()
		rc.slab.release()
		rc.slab = nil
	}
	rc.slabFree = nil
}

// maxStage bounds the frames a reader stages for one destination before
// it queues them.
const maxStage = 32

// stagePool holds the arrays of stages: a reader holds one only while it
// has frames staged.
var stagePool = sync.Pool{New: func() any { a := make([]staged, 0, maxStage); return &a }}

// staged is a frame relayed and not yet queued (see queued).
type staged struct {
	frame []byte
	lease *lease
	at    int64
}

// flushStage accounts for the frames relayed to the cached destination and
// queues them there, under one lock. The reader flushes its stage before
// it routes a frame the usual way, before it reads, waits or writes what
// it deferred (flushPending), and before its resolution changes: frames
// leave in the order they arrived, and a stage has one destination and
// one resolution. A queue that cannot take every frame at once is waited
// for as a send waits (sendSlow); what it does not take in the end, or a
// destination that has closed, is accounted for as the usual path
// accounts for a failed send.
func (rd *reader) flushStage() {
	rc := rd.relayCache
	if rc == nil || len(rc.stage) == 0 {
		return
	}
	rd.settleRelaySlab()
	stage, in := rc.stage, rc.stageIn
	rc.stage, rc.stageIn = nil, 0
	c := rd.c
	dst := rc.dst
	c.t.node.CommitN(&rc.res, len(stage))
	c.framesIn.Add(uint64(len(stage)))
	c.bytesIn.Add(in)
	q := dst.queue
	q.mu.Lock()
	closed := q.closed
	i := 0
	var now int64 // the time frames timed for RelayLatency are queued at
	if !closed {
		for ; i < len(stage); i++ {
			f := &stage[i]
			if f.at != 0 {
				if now == 0 {
					now = time.Now().UnixNano()
				}
				f.at = now
			}
			m := queued{frame: f.frame, size: len(f.frame), lease: f.lease, at: f.at}
			if !q.fits(&m) {
				break
			}
			q.appendLocked(m)
		}
		if i > 0 && !q.writing && q.deferred != rd {
			// Written before the reader next reads (see enqueueLeased).
			q.deferred = rd
			rd.pending = append(rd.pending, dst)
		}
	}
	q.mu.Unlock()
	if i < len(stage) {
		rd.stageRest(stage[i:], closed)
	}
	clear(stage)
	stage = stage[:0]
	stagePool.Put(&stage)
}

// stageRest queues the staged frames a full queue did not take, waiting
// as a send waits, or accounts for them as failed sends.
func (rd *reader) stageRest(rest []staged, closed bool) {
	rc := rd.relayCache
	c := rd.c
	t := c.t
	dst := rc.dst
	res := rc.res
	onward := rc.m.Onward
	if closed {
		rc.resolved = false // a connection under the same name may replace it
	}
	for _, f := range rest {
		if f.at != 0 {
			f.at = time.Now().UnixNano()
		}
		m := queued{frame: f.frame, size: len(f.frame), lease: f.lease, at: f.at}
		var err error
		if closed {
			err = &ConnError{Peer: dst.name, Err: ErrClosed}
		} else {
			err = dst.sendSlow(rd.ctx, m, rd)
		}
		if err != nil && m.lease != nil {
			m.lease.release()
		}
		switch {
		case err == nil:
		case t.node.Failed(&res, err): // as the alias's or the last rewriter's error
		case !errors.Is(err, ErrQueueFull):
			// As route reports Route's error.
			t.stats.unroutable.Add(1)
			t.logSometimes("dropped message", "peer", c.name, "onward", onward.String(), "err", err)
		}
	}
}

// resolve finds where messages with the cached head go, and encodes their
// outgoing head; it reports false if relay does not take them there.
func (rd *reader) resolve() bool {
	rd.flushStage()
	rc := rd.relayCache
	rc.resolved = false
	res, ok := rd.c.t.node.Resolve(rc.m.Onward)
	if !ok {
		return false
	}
	dst, onward := rd.destination(&res)
	if dst == nil || len(onward) == 0 {
		return false
	}
	if rc.dst != dst || !sameRoute(rc.onward, onward) || len(rc.head) == 0 || !rc.headOf(&rc.m) {
		out := routing.TransportMessage{Onward: onward, Return: rc.m.Return}
		head, err := out.AppendBinary(rc.head[:0])
		if err != nil {
			return false
		}
		// The empty payload's length goes: the frame's own follows.
		rc.head, rc.dst, rc.onward, rc.headFor = head[:len(head)-1], dst, onward, rc.m.Return
	}
	rc.res, rc.resolved = res, true
	return true
}

// headOf reports whether the cached outgoing head was encoded for m's
// return route.
func (rc *relayCache) headOf(m *routing.TransportMessage) bool {
	return sameRoute(rc.headFor, m.Return)
}

// sameRoute reports whether a and b are the same slice.
func sameRoute(a, b routing.Route) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// destination returns the connection a message resolved as res leaves
// through, and the onward route it leaves with (as aliasWorker and
// RouteMessage send it), or nil.
func (rd *reader) destination(res *node.Resolution) (*conn, routing.Route) {
	t := rd.c.t
	onward := res.Onward
	if res.Worker != nil {
		aw, ok := res.Worker.(aliasWorker)
		if !ok || aw.c.t != t {
			return nil, nil
		}
		for len(onward) > 0 && onward[0] == aw.c.addr {
			onward = onward[1:]
		}
		return aw.c, onward
	}
	if onward[0].Type != routing.TCP {
		return nil, nil
	}
	v, ok := t.conns.Load(onward[0])
	if !ok {
		return nil, nil
	}
	return v.(*conn), onward[1:]
}
