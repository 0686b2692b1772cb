package noise

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzReadMessage gives arbitrary bytes to every reading position of the
// handshake: the responder reading M1, the initiator reading M2 and the
// responder reading M3, each starting from the fixed-key state of
// noise-xx-handshake-1.hex. ReadMessage must never panic; a failed read must
// leave the state unchanged and the genuine message readable; and M2 and M3,
// being authenticated, may be accepted only when they are the genuine ones.
// Seeds: the vector messages (testdata/ and testdata/fuzz/FuzzReadMessage/).
func FuzzReadMessage(f *testing.F) {
	for _, file := range handshakeVectors {
		v := readVectors(f, file)
		for _, m := range []string{"m1", "m2", "m3"} {
			f.Add(v.get(f, m))
		}
	}

	// The three reading states, built once and copied per input: a
	// HandshakeState holds only values and immutable keys, so a struct copy
	// is an independent state.
	ini, res, m := vectorMessages(f)
	var readers [3]HandshakeState
	for i := range 3 {
		w, r := ini, res
		if i == 1 {
			w, r = res, ini
		}
		if _, err := w.WriteMessage(nil, nil); err != nil {
			f.Fatal(err)
		}
		readers[i] = *r
		if _, err := r.ReadMessage(nil, m[i]); err != nil {
			f.Fatal(err)
		}
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		for i := range readers {
			hs := readers[i]
			before := snap(&hs)
			payload, err := hs.ReadMessage(nil, msg)
			if err != nil {
				if payload != nil {
					t.Errorf("M%d: payload %x returned with error %v", i+1, payload, err)
				}
				if snap(&hs) != before {
					t.Fatalf("M%d: failed ReadMessage (%v) changed the state", i+1, err)
				}
				if _, err := hs.ReadMessage(nil, m[i]); err != nil {
					t.Fatalf("M%d: genuine message rejected after a failed one: %v", i+1, err)
				}
				continue
			}
			if i > 0 && !bytes.Equal(msg, m[i]) {
				t.Fatalf("M%d: accepted a forged message %x", i+1, msg)
			}
			if i == 0 && !bytes.Equal(payload, msg[32:]) {
				t.Fatalf("M1: payload %x, want the bytes after e %x", payload, msg[32:])
			}
		}
	})
}

// FuzzDecrypt decrypts arbitrary (nonce, ciphertext) pairs under both data
// keys of noise-xx-handshake-1.hex. Decrypt must never panic, must return
// nil on error, and anything it accepts must re-encrypt to the same bytes.
// Seeds: the secure-channel data vectors.
func FuzzDecrypt(f *testing.F) {
	var states []*CipherState
	for _, file := range []string{"sc-data-initiator-to-responder.hex", "sc-data-responder-to-initiator.hex"} {
		v := readVectors(f, file)
		blob := v.get(f, "blob")
		f.Add(binary.BigEndian.Uint16(blob), blob[2:])
		cs, err := NewCipherState(v.key(f, "key"))
		if err != nil {
			f.Fatal(err)
		}
		states = append(states, cs)
	}
	f.Fuzz(func(t *testing.T, n uint16, ct []byte) {
		for _, cs := range states {
			pt, err := cs.Decrypt(nil, n, ct)
			if err != nil {
				if pt != nil {
					t.Errorf("plaintext %x returned with error %v", pt, err)
				}
				continue
			}
			if again := cs.Encrypt(nil, n, pt); !bytes.Equal(again, ct) {
				t.Fatalf("accepted %x, which re-encrypts to %x", ct, again)
			}
		}
	})
}
