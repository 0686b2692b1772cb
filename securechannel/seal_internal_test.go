package securechannel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// TestLayOutInnerWire: a payload sealed where it lies (layOutInner, then
// sealInPlace) is byte for byte the data message sealed into a new buffer
// (appendSealed of the encoded inner message) for the same key and
// counter, for payload and route lengths around the varint boundaries;
// with a byte too little room in front or behind, layOutInner declines
// and leaves the memory as it was.
func TestLayOutInnerWire(t *testing.T) {
	key := noise.Key{1, 2, 3}
	long := routing.LocalAddress(string(bytes.Repeat([]byte("a"), 130)))
	for _, onward := range []routing.Route{
		{routing.LocalAddress("outlet")},
		{routing.LocalAddress("fwd"), long},
	} {
		for _, n := range []int{1, 127, 128, 16383, 16384, 60 << 10} {
			ret := routing.Route{routing.LocalAddress("portal_1234")}
			inner := routing.TransportMessage{Version: routing.Version, Onward: onward, Return: ret}
			payload := bytes.Repeat([]byte{0xa5}, n)
			inner.Payload = payload
			ptLen := inner.EncodedLen()
			hdr := dataHeaderLen(ptLen)
			need := hdr + ptLen - n // room in front of the payload
			enc, err := inner.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			for _, ctr := range []uint16{0, 1, 65534} {
				want := appendSealed(nil, mustCipher(t, key), ctr, enc)
				for _, tc := range []struct {
					front, back int
					ok          bool
				}{
					{need, noise.Overhead, true},
					{need + 7, noise.Overhead + 9, true},
					{need - 1, noise.Overhead, false},
					{need, noise.Overhead - 1, false},
				} {
					name := fmt.Sprintf("onward %s, %d bytes, counter %d, room %d+%d", onward, n, ctr, tc.front, tc.back)
					room := make([]byte, tc.front+n+tc.back)
					for i := range room {
						room[i] = byte(i * 7)
					}
					copy(room[tc.front:], payload)
					before := bytes.Clone(room)
					in := inner
					in.Payload = room[tc.front : tc.front+n]
					buf, ok, err := layOutInner(room[:tc.front], tc.front, &in, hdr, ptLen)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if ok != tc.ok {
						t.Fatalf("%s: layOutInner ok %v, want %v", name, ok, tc.ok)
					}
					if !ok {
						if !bytes.Equal(room, before) {
							t.Errorf("%s: declined, but the memory changed", name)
						}
						continue
					}
					got := sealInPlace(buf, hdr, mustCipher(t, key), ctr)
					if !bytes.Equal(got, want) {
						t.Fatalf("%s: sealed in place differs from the data message sealed into a new buffer", name)
					}
					if &got[0] != &room[tc.front-need] || len(got) != need+n+noise.Overhead {
						t.Errorf("%s: not sealed where the payload lies", name)
					}
					if !bytes.Equal(room[:tc.front-need], before[:tc.front-need]) || !bytes.Equal(room[tc.front+n+noise.Overhead:], before[tc.front+n+noise.Overhead:]) {
						t.Errorf("%s: bytes outside the message changed", name)
					}
				}
			}
		}
	}
}

func mustCipher(t *testing.T, k noise.Key) *noise.CipherState {
	t.Helper()
	c, err := noise.NewCipherState(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEncryptSealsInPlace: the encrypting worker (with its mailbox, as a
// channel runs it) seals a payload in the sender's memory only when the
// sender gave that memory up (node.WithPayloadRoom) and it has the room;
// otherwise (unmarked, too little room in front or behind, the payload not
// where the mark says) the sender's bytes stay as they were. Every
// message, sealed either way, takes the next counter and reaches its
// destination through the responder (whose replay window refuses a
// counter used twice), and a sender's refused message at the end of the
// counters is neither sealed nor counted as sent.
func TestEncryptSealsInPlace(t *testing.T) {
	r := newInPlaceRig(t)
	ctx := t.Context()
	if err := r.n.StartWorker(ctx, r.ini.ch.local.Value, node.HandlerFunc(r.ini.encrypt)); err != nil {
		t.Fatal(err)
	}
	onward := routing.Route{r.ini.ch.local, r.sink.Address()}
	const k = 60 << 10
	const front = 256
	for i, tc := range []struct {
		name        string
		mark        bool
		front, back int
		off         int // added to where the mark says the payload is
		inPlace     bool
	}{
		{"marked, room", true, front, noise.Overhead, 0, true},
		{"unmarked, room", false, front, noise.Overhead, 0, false},
		{"marked, no room in front", true, 4, noise.Overhead, 0, false},
		{"marked, no room behind", true, front, noise.Overhead - 1, 0, false},
		{"marked, the payload elsewhere", true, front, noise.Overhead, 1, false},
		{"marked, room again", true, front, 100, 0, true},
	} {
		room := make([]byte, tc.front+k+tc.back)
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		for j := range room {
			room[j] = byte(rng.Uint32())
		}
		plain := bytes.Clone(room[tc.front : tc.front+k])
		before := bytes.Clone(room)
		rctx := ctx
		if tc.mark {
			rctx = node.WithPayloadRoom(ctx, room, tc.front+tc.off)
		}
		st0 := r.ini.ch.Stats()
		if err := r.n.Route(rctx, routing.TransportMessage{Onward: onward, Return: routing.Route{routing.LocalAddress("app")}, Payload: room[tc.front : tc.front+k]}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := r.sink.Receive(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got.Payload(), plain) {
			t.Fatalf("%s: delivered %d bytes, not the payload sent", tc.name, len(got.Payload()))
		}
		st := r.ini.ch.Stats()
		if st.Sent != st0.Sent+1 || st.SealedInPlace-st0.SealedInPlace != map[bool]uint64{false: 0, true: 1}[tc.inPlace] {
			t.Errorf("%s: Sent %d → %d, SealedInPlace %d → %d", tc.name, st0.Sent, st.Sent, st0.SealedInPlace, st.SealedInPlace)
		}
		if unchanged := bytes.Equal(room, before); unchanged == tc.inPlace {
			t.Errorf("%s: the sender's memory unchanged: %v, want %v", tc.name, unchanged, !tc.inPlace)
		}
		if tc.inPlace && bytes.Contains(room, plain[:64]) {
			t.Errorf("%s: plaintext left in the sender's memory", tc.name)
		}
		if r.ini.sendN != uint32(i+1) {
			t.Errorf("%s: next counter %d, want %d", tc.name, r.ini.sendN, i+1)
		}
	}
	if st := r.res.ch.Stats(); st.Received != 6 || st.Replays+st.DecryptFailures != 0 {
		t.Errorf("responder: %+v", st)
	}

	// At the end of the counters: refused, not sealed, not sent.
	r.ini.sendN = noise.MaxNonce
	room := make([]byte, front+k+noise.Overhead)
	done := make(chan error, 1)
	probe := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
		done <- r.ini.encrypt(ctx, s, m)
		return nil
	})
	if _, err := r.n.StartWorkerConfig(ctx, probe, node.WorkerConfig{Addresses: []string{"probe"}, Inline: true}); err != nil {
		t.Fatal(err)
	}
	st0 := r.ini.ch.Stats()
	payload := room[front : front+k]
	payload[0] = 'x'
	if err := r.n.Route(node.WithPayloadRoom(ctx, room, front), routing.TransportMessage{Onward: routing.Route{routing.LocalAddress("probe"), r.sink.Address()}, Payload: payload}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrNonceExhausted) {
		t.Fatalf("at counter %d: %v, want ErrNonceExhausted", noise.MaxNonce, err)
	}
	if payload[0] != 'x' || !bytes.Equal(room[front+k:], make([]byte, noise.Overhead)) {
		t.Error("a refused message was sealed")
	}
	if st := r.ini.ch.Stats(); st.Sent != st0.Sent || st.SealedInPlace != st0.SealedInPlace || st.NonceExhausted != st0.NonceExhausted+1 {
		t.Errorf("refused at the end of the counters: %+v, before %+v", st, st0)
	}
}

// BenchmarkEncrypt is the encrypting worker's cost for one 60 KiB portal
// chunk (the route and payload a portal sends), sealed in the sender's
// memory (room: node.WithPayloadRoom) or into a new buffer (copy), handed
// to a next hop that drops it.
func BenchmarkEncrypt(b *testing.B) {
	for _, inPlace := range []bool{false, true} {
		name := "copy"
		if inPlace {
			name = "room"
		}
		b.Run(name, func(b *testing.B) {
			ini, res := establishedPair(b)
			n := ini.ch.node
			ctx := b.Context()
			drop := node.HandlerFunc(func(context.Context, node.Sender, *node.Message) error { return nil })
			if _, err := n.StartWorkerConfig(ctx, drop, node.WorkerConfig{Addresses: []string{res.ch.remote.Value}, Inline: true}); err != nil {
				b.Fatal(err)
			}
			var err error
			probe := node.HandlerFunc(func(ctx context.Context, s node.Sender, m *node.Message) error {
				err = ini.encrypt(ctx, s, m)
				return nil
			})
			if _, err := n.StartWorkerConfig(ctx, probe, node.WorkerConfig{Addresses: []string{"probe"}, Inline: true}); err != nil {
				b.Fatal(err)
			}
			const front, k = 512, 60 << 10
			room := make([]byte, front+k+noise.Overhead)
			onward := routing.Route{routing.LocalAddress("probe"), routing.LocalAddress("0123456789abcdef0123456789abcdef")}
			ret := routing.Route{routing.LocalAddress("fedcba9876543210fedcba9876543210")}
			b.SetBytes(k)
			b.ReportAllocs()
			for b.Loop() {
				rctx := ctx
				if inPlace {
					rctx = node.WithPayloadRoom(ctx, room, front)
				}
				ini.sendN = 0 // only the cost counts here, not the counters
				if e := n.Route(rctx, routing.TransportMessage{Onward: onward, Return: ret, Payload: room[front : front+k]}); e != nil {
					b.Fatal(e)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if st := ini.ch.Stats(); (st.SealedInPlace == st.Sent) != inPlace {
				b.Fatalf("%d of %d sealed in place", st.SealedInPlace, st.Sent)
			}
		})
	}
}
