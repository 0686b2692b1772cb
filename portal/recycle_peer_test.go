package portal_test

import (
	"bytes"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
)

// TestRecycleUntrustedCredit: the outlet's reader reuses a read buffer
// only once the inlet's Credit proves the bytes in it written, whatever
// the inlet grants. Here the inlet holds every Data message it receives
// (a mailbox on the outlet's node: the payloads are the reader's buffers,
// as a transport's queue or a secure channel's sealed message would hold
// them) and grants credits that prove nothing; a buffer reused while held
// shows as a held payload whose bytes changed. (Through a secure channel,
// which seals in place, such a buffer is ciphertext about to be written:
// the reader's next read would put plaintext there.)
func TestRecycleUntrustedCredit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		credits []uint64
	}{
		// Its first Credit is its window: a window of 2^64-1 overflowed
		// end+window in the recycler, below every limit.
		{"window 2^64-1", []uint64{^uint64(0)}},
		// A window of 1 MiB, then a limit far past the bytes sent plus
		// that window: bytes written that were never sent.
		{"limit past the bytes sent", []uint64{1 << 20, ^uint64(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 2 << 20
			data := make([]byte, total)
			rng := rand.NewChaCha8([32]byte{7})
			rng.Read(data)
			start := make(chan struct{})
			target := serveTCP(t, func(c net.Conn) {
				select {
				case <-start:
				case <-t.Context().Done():
					return
				}
				c.Write(data)
			})
			n := node.New(node.Config{})
			t.Cleanup(func() { n.Close() })
			o, err := portal.NewOutlet(n, portal.OutletConfig{Target: target})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			mb, route, pong := fakeInlet(t, n, routing.Route{o.Address()})
			if pong.Ext == nil {
				t.Fatalf("answer %+v, want a Pong with the offer", pong)
			}
			for _, g := range tc.credits {
				send(t, mb, route, portal.AppendCredit(nil, g))
			}
			close(start)
			type held struct {
				off uint64
				p   []byte
			}
			var got []held
			for at := uint64(0); at < total; {
				m, err := portal.DecodeG3(receive(t, mb).Payload(), true)
				if err != nil {
					t.Fatal(err)
				}
				if m.Tag != portal.TagData || m.Offset != at {
					t.Fatalf("got tag %d at %d, want Data at %d", m.Tag, m.Offset, at)
				}
				got = append(got, held{m.Offset, m.Data}) // kept, not copied
				at += uint64(len(m.Data))
			}
			changed := 0
			for _, h := range got {
				if !bytes.Equal(h.p, data[h.off:h.off+uint64(len(h.p))]) {
					changed++
				}
			}
			if changed > 0 {
				t.Fatalf("%d of %d messages held changed under their holder: read buffers reused before the credit proved them written", changed, len(got))
			}
		})
	}
}
