package portal

import (
	"fmt"
	"io"
	"time"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// A portal is a node.SpliceSink: a transport that has read the head of a
// large Payload or Data message for it, and not its bytes, may move those
// bytes from its socket into the portal's local socket without reading
// them into memory (tcp, on Linux). The portal takes such a message only
// when it would write it at once itself (deliver): a G3 portal past its
// handshake, nothing queued for its local socket and nobody writing to it,
// no overflow backlog, and a message that passes every check handle and
// deliver make (its tag for the flow control in force, its offset, the
// window). Otherwise it declines, and the message comes through
// HandleMessage, which handles it, or its errors, as always. Credits,
// counters and order are those of deliver.
var _ node.SpliceSink = (*pconn)(nil)

// dataHead is the header of a Payload or Data message.
type dataHead struct {
	tag  Tag
	off  uint64 // Data's offset
	skip int    // the header's length: the data follows
}

// parseDataHead parses the header of a G3 Payload or (ext) Data message of
// size bytes from its first bytes, head, strictly: the data's length must
// be all the rest of the message (no trailing bytes, which DecodeG3 would
// ignore).
func parseDataHead(head []byte, size int, ext bool) (dataHead, bool) {
	var h dataHead
	r := bare.NewReader(head)
	tag, err := r.Uint("")
	if err != nil {
		return h, false
	}
	switch {
	case tag == uint64(TagPayload):
	case ext && tag == uint64(TagData):
		if h.off, err = r.Uint(""); err != nil {
			return h, false
		}
	default:
		return h, false
	}
	n, err := r.Uint("")
	if err != nil {
		return h, false
	}
	h.tag, h.skip = Tag(tag), r.Offset()
	if size < h.skip || n != uint64(size-h.skip) {
		return h, false
	}
	return h, true
}

// spliceable reports whether the message of size bytes starting with head
// may be spliced now, with hmu held: everything handle and deliver would
// check passes, and deliver would write it at once.
func (c *pconn) spliceable(head []byte, size int) (dataHead, bool) {
	if c.rc == nil || c.stopped || c.handshaking || c.backlog > 0 || c.gen != G3 {
		return dataHead{}, false
	}
	c.mu.Lock()
	ext, extOffered, dataSeen, recvd, granted := c.ext, c.extOffered, c.dataSeen, c.recvd, c.granted
	c.mu.Unlock()
	h, ok := parseDataHead(head, size, ext || extOffered)
	if !ok {
		return h, false
	}
	d := uint64(size - h.skip)
	switch h.tag {
	case TagPayload:
		if ext && (extOffered || dataSeen) {
			return h, false // late: handle fails the portal
		}
	case TagData:
		if h.off != recvd || recvd+d > granted {
			return h, false // deliver fails the portal
		}
	}
	return h, c.q.idle()
}

// SpliceHead implements node.SpliceSink: whether a message of size bytes
// whose first bytes are head could be spliced into the local socket now,
// and the length of its header.
func (c *pconn) SpliceHead(onward routing.Route, head []byte, size int) (int, bool) {
	if len(onward) != 1 || c.rc == nil {
		return 0, false
	}
	c.hmu.Lock()
	h, ok := c.spliceable(head, size)
	c.hmu.Unlock()
	return h.skip, ok
}

// SpliceMessage implements node.SpliceSink: it takes a message whose data
// is in src as deliver takes one, writing what the local socket takes at
// once (spliced) and queueing the rest for the writer, or declines.
func (c *pconn) SpliceMessage(onward routing.Route, head []byte, src node.SpliceSource) bool {
	if len(onward) != 1 || c.rc == nil {
		return false
	}
	c.hmu.Lock()
	defer c.hmu.Unlock()
	d := src.Len()
	h, ok := c.spliceable(head, len(head)+d)
	if !ok || h.skip != len(head) || !c.q.claim() {
		return false
	}
	c.mu.Lock()
	if h.tag == TagData {
		c.dataSeen = true
	}
	c.recvd += uint64(d)
	c.mu.Unlock()
	c.active.Store(time.Now().UnixNano())
	n := src.SpliceTo(c.rc)
	var rest []byte
	if k := src.Len(); k > 0 {
		// The socket is full: the rest waits for the writer, in memory
		// of its own.
		rest = make([]byte, k)
		if _, err := io.ReadFull(src, rest); err != nil {
			c.q.release(nil)
			c.stopped = true
			c.failLater(fmt.Errorf("%w: %d bytes of a message could not be read back: %w", ErrLost, k, err))
			return true
		}
	}
	c.stats.spliced.Add(uint64(n))
	if !c.q.release(rest) {
		c.stopped = true
		return true
	}
	if n > 0 {
		c.wrote(n, true)
	}
	return true
}

// idle reports whether nothing is queued and nobody writes: claim would
// succeed now.
func (q *writeQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.busy && len(q.chunks) == 0 && !q.closed && !q.aborted
}
