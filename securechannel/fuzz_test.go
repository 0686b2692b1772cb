package securechannel

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/noise"
	"github.com/ockamhub/ockamhub/routing"
)

// FuzzListenerMessage gives arbitrary payloads to the listener-message
// decoder. It must never panic, and must accept only a 32-byte M1 in exactly
// one of the two forms; what it accepts must re-encode to an equal message,
// which is the input itself unless the input used non-minimal varints (they
// are accepted, protocol.md §13.2). Seeds: the two vectors and
// testdata/fuzz/FuzzListenerMessage/.
func FuzzListenerMessage(f *testing.F) {
	f.Add(segment(f, "sc-m1-listener-message-enum.hex", "listener-message"))
	f.Add(segment(f, "sc-m1-listener-message-struct.hex", "listener-message"))
	f.Fuzz(func(t *testing.T, p []byte) {
		m1, form, cb, err := parseListenerMessage(p)
		if err != nil {
			if !errors.Is(err, ErrListenerMessage) {
				t.Fatalf("error %v does not wrap ErrListenerMessage", err)
			}
			return
		}
		if len(m1) != m1Len {
			t.Fatalf("accepted an M1 of %d bytes", len(m1))
		}
		if form == ListenerMessageEnum && cb != nil {
			t.Fatal("enum form with a callback address")
		}
		again := appendListenerMessage(nil, form, m1, cb)
		m1b, formb, cbb, err := parseListenerMessage(again)
		if err != nil || !bytes.Equal(m1b, m1) || formb != form || (cb == nil) != (cbb == nil) || (cb != nil && *cb != *cbb) {
			t.Fatalf("%x re-encoded as %x, which parses differently (%v)", p, again, err)
		}
		if len(again) > len(p) || (len(again) == len(p) && !bytes.Equal(again, p)) {
			t.Fatalf("%x re-encoded as %x: the encoder is not minimal", p, again)
		}
	})
}

// FuzzDataMessage runs the receiving side of a channel end on arbitrary
// input: payload is handed to the data-message decoder as received from the
// network, and inner is sealed under the real key, as a buggy or hostile
// peer could, so that the inner TransportMessage decoder is reached too.
// Neither may panic; a payload that is not the genuine vector must not
// authenticate. Seeds: the sc-data-*.hex payloads and
// testdata/fuzz/FuzzDataMessage/.
func FuzzDataMessage(f *testing.F) {
	const file = "sc-data-initiator-to-responder.hex"
	genuine := segment(f, file, "payload-field")[1:]
	genuineBlob := segment(f, file, "blob")
	f.Add(genuine, segment(f, file, "inner-plaintext"))
	f.Add(segment(f, "sc-data-responder-to-initiator.hex", "payload-field")[1:], []byte{1, 0, 0, 0})
	key := noise.Key(segment(f, file, "key"))
	f.Fuzz(func(t *testing.T, payload, inner []byte) {
		// Once with a read-only payload, once decrypting in place (a
		// payload the transport owns): the same messages are delivered.
		var delivered [2][]routing.TransportMessage
		for i, exclusive := range []bool{false, true} {
			delivered[i] = fuzzDecrypt(t, key, genuineBlob, payload, inner, exclusive)
		}
		if len(delivered[0]) != len(delivered[1]) {
			t.Fatalf("delivered %d messages read-only, %d in place", len(delivered[0]), len(delivered[1]))
		}
		for i := range delivered[0] {
			a, b := delivered[0][i], delivered[1][i]
			if !bytes.Equal(a.Payload, b.Payload) || a.Onward.String() != b.Onward.String() || a.Return.String() != b.Return.String() {
				t.Fatalf("message %d: %v read-only, %v in place", i, a, b)
			}
		}
	})
}

// fuzzDecrypt is one pass of FuzzDataMessage, decrypting in place or not,
// and returns what was delivered.
func fuzzDecrypt(t *testing.T, key noise.Key, genuineBlob, payload, inner []byte, exclusive bool) []routing.TransportMessage {
	recv, err := noise.NewCipherState(key)
	if err != nil {
		t.Fatal(err)
	}
	res := &endpoint{ch: &Channel{local: routing.LocalAddress("r_local"), log: slog.New(slog.DiscardHandler)}, recv: recv}
	s := &recordingSender{}
	msg := func(p []byte) *node.Message {
		return node.NewMessage(routing.LocalAddress("r_remote"), routing.TransportMessage{Payload: p})
	}

	p := bytes.Clone(payload)
	if err := res.decrypt(t.Context(), s, msg(p), exclusive); err != nil {
		t.Fatalf("decrypt returned %v; bad input must be dropped", err)
	}
	if !exclusive && !bytes.Equal(p, payload) {
		t.Fatalf("a read-only payload was modified")
	}
	// Only the genuine blob authenticates (its length prefix may be
	// non-minimal: varints are accepted in any length).
	if blob, _ := parseVec(payload); len(s.sent) > 0 && !bytes.Equal(blob, genuineBlob) {
		t.Fatalf("forged payload %x was accepted", payload)
	}

	before := len(s.sent)
	sealed := appendSealed(nil, recv, 1000, inner)
	if len(sealed) != sealedLen(len(inner)) {
		t.Fatalf("sealed %d bytes, sealedLen says %d", len(sealed), sealedLen(len(inner)))
	}
	if err := res.decrypt(t.Context(), s, msg(bytes.Clone(sealed)), exclusive); err != nil {
		t.Fatalf("decrypt returned %v", err)
	}
	_, _, derr := routing.DecodeMessage(inner)
	if delivered := len(s.sent) > before; delivered != (derr == nil) {
		t.Fatalf("authentic inner %x: delivered %v, decode error %v", inner, delivered, derr)
	}
	if err := res.decrypt(t.Context(), s, msg(bytes.Clone(sealed)), exclusive); err != nil || len(s.sent) > before+1 {
		t.Fatalf("replay of counter 1000 delivered (err %v)", err)
	}
	return s.sent
}

// FuzzIdentityText gives arbitrary text to the identity decoders
// (ParseIdentity and the allow-list / known-peers line reader). They must
// never panic; an accepted identity must print as 64 lowercase hex digits
// that parse back to itself; and an error must never repeat the input
// (it may be a secret pasted by mistake). Seeds: testdata/fuzz/FuzzIdentityText/.
func FuzzIdentityText(f *testing.F) {
	f.Add("0f" + string(bytes.Repeat([]byte("ab"), 31)))
	f.Add("# comment\n" + string(bytes.Repeat([]byte("1"), 64)) + " name\n")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err == nil {
			back, err := ParseIdentity(id.String())
			if err != nil || back != id || len(id.String()) != 64 {
				t.Fatalf("%q: accepted as %v but does not round-trip: %v", s, id, err)
			}
		} else if !errors.Is(err, ErrIdentity) {
			t.Fatalf("%q: error %v does not wrap ErrIdentity", s, err)
		} else if len(s) >= 8 && bytes.Contains([]byte(err.Error()), []byte(s)) {
			t.Fatalf("error %q repeats the input", err)
		}
		ids, err := parseIdentityLines(bytes.NewReader([]byte(s)), "fuzz")
		for _, id := range ids {
			if id.IsZero() {
				t.Fatalf("%q: a zero identity was accepted", s)
			}
		}
		if err != nil && ids != nil {
			t.Fatalf("%q: both identities and an error", s)
		}
	})
}
