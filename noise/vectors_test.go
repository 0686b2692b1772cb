package noise

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorFile holds the named segments of a testdata/*.hex file in the format of
// shared/vectors/README.md: '#' lines are comments, a '## NAME' line starts
// segment NAME, every other non-empty line is space-separated hex byte pairs.
// Bytes before any '## ' line belong to the unnamed segment "".
type vectorFile map[string][]byte

// readVectors parses testdata/name, failing tb on any malformed line.
func readVectors(tb testing.TB, name string) vectorFile {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	v := vectorFile{}
	segment := ""
	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			segment = strings.TrimSpace(line[3:])
			if _, dup := v[segment]; dup {
				tb.Fatalf("%s:%d: duplicate segment %q", name, lineNo, segment)
			}
			v[segment] = []byte{}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			for field := range strings.FieldsSeq(line) {
				b, err := hex.DecodeString(field)
				if err != nil || len(b) != 1 {
					tb.Fatalf("%s:%d: bad hex byte %q", name, lineNo, field)
				}
				v[segment] = append(v[segment], b[0])
			}
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return v
}

// get returns segment name, failing tb when it is missing.
func (v vectorFile) get(tb testing.TB, name string) []byte {
	tb.Helper()
	b, ok := v[name]
	if !ok {
		tb.Fatalf("vector has no segment %q", name)
	}
	return b
}

// key returns segment name as a Key, failing tb when it is not 32 bytes.
func (v vectorFile) key(tb testing.TB, name string) Key {
	tb.Helper()
	b := v.get(tb, name)
	if len(b) != len(Key{}) {
		tb.Fatalf("segment %q is %d bytes, want 32", name, len(b))
	}
	return Key(b)
}

// vectorHandshakes returns the initiator and responder configured with the
// fixed keys of a noise-xx-handshake-*.hex vector (protocol.md §11.9).
func vectorHandshakes(tb testing.TB, v vectorFile) (initiator, responder *HandshakeState) {
	tb.Helper()
	pair := func(name string) KeyPair {
		kp, err := NewKeyPair(v.key(tb, name))
		if err != nil {
			tb.Fatal(err)
		}
		return kp
	}
	ie, re := pair("initiator-ephemeral-private"), pair("responder-ephemeral-private")
	var err error
	initiator, err = NewHandshake(Config{
		Initiator:        true,
		StaticKeyPair:    pair("initiator-static-private"),
		EphemeralKeyPair: &ie,
	})
	if err != nil {
		tb.Fatal(err)
	}
	responder, err = NewHandshake(Config{
		StaticKeyPair:    pair("responder-static-private"),
		EphemeralKeyPair: &re,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return initiator, responder
}

var handshakeVectors = []string{"noise-xx-handshake-1.hex", "noise-xx-handshake-2.hex"}

func TestHandshakeVectors(t *testing.T) {
	for _, file := range handshakeVectors {
		t.Run(file, func(t *testing.T) {
			v := readVectors(t, file)
			ini, res := vectorHandshakes(t, v)

			if name := v["protocol-name-padded"]; name != nil && !bytes.Equal(name, []byte(protocolName+"\x00\x00\x00\x00")) {
				t.Errorf("padded protocol name: vector %x, code %q", name, protocolName)
			}
			if want, ok := v["h-after-prologue"]; ok {
				for side, hs := range map[string]*HandshakeState{"initiator": ini, "responder": res} {
					if got := hs.HandshakeHash(); !bytes.Equal(got[:], want) {
						t.Errorf("%s h after prologue = %x, want %x", side, got, want)
					}
				}
			}
			for _, k := range []struct {
				name string
				got  Key
			}{
				{"initiator-static-public", ini.LocalStatic()},
				{"initiator-ephemeral-public", ini.ePub},
				{"responder-static-public", res.LocalStatic()},
				{"responder-ephemeral-public", res.ePub},
			} {
				if want, ok := v[k.name]; ok && !bytes.Equal(k.got[:], want) {
					t.Errorf("%s = %x, want %x", k.name, k.got, want)
				}
			}

			// M1, M2, M3 alternate between the sides; payloads are empty
			// unless the vector names them.
			steps := []struct {
				writer, reader *HandshakeState
				msg, payload   string
			}{
				{ini, res, "m1", "payload-1"},
				{res, ini, "m2", "payload-2"},
				{ini, res, "m3", "payload-3"},
			}
			for _, s := range steps {
				payload := v[s.payload] // nil when absent: empty payload
				msg, err := s.writer.WriteMessage(nil, payload)
				if err != nil {
					t.Fatalf("write %s: %v", s.msg, err)
				}
				if want := v.get(t, s.msg); !bytes.Equal(msg, want) {
					t.Fatalf("%s:\n got %x\nwant %x", s.msg, msg, want)
				}
				got, err := s.reader.ReadMessage(nil, msg)
				if err != nil {
					t.Fatalf("read %s: %v", s.msg, err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatalf("%s payload = %q, want %q", s.msg, got, payload)
				}
			}

			if !ini.Complete() || !res.Complete() {
				t.Fatalf("Complete() = %v, %v after three messages, want true, true", ini.Complete(), res.Complete())
			}
			want := v.get(t, "handshake-hash")
			for side, hs := range map[string]*HandshakeState{"initiator": ini, "responder": res} {
				if got := hs.HandshakeHash(); !bytes.Equal(got[:], want) {
					t.Errorf("%s final h = %x, want %x", side, got, want)
				}
			}
			if got, want := ini.PeerStatic(), res.LocalStatic(); got != want {
				t.Errorf("initiator PeerStatic = %x, want the responder's %x", got, want)
			}
			if got, want := res.PeerStatic(), ini.LocalStatic(); got != want {
				t.Errorf("responder PeerStatic = %x, want the initiator's %x", got, want)
			}

			// The Ockam key order of protocol.md §10.2.
			k1, k2 := v.key(t, "k1"), v.key(t, "k2")
			iSend, iRecv := mustSplit(t, ini)
			rSend, rRecv := mustSplit(t, res)
			for _, c := range []struct {
				name string
				got  Key
				want Key
			}{
				{"initiator send", iSend.Key(), k2},
				{"initiator recv", iRecv.Key(), k1},
				{"responder send", rSend.Key(), k1},
				{"responder recv", rRecv.Key(), k2},
			} {
				if c.got != c.want {
					t.Errorf("%s key = %x, want %x", c.name, c.got, c.want)
				}
			}
		})
	}
}

func mustSplit(tb testing.TB, hs *HandshakeState) (send, recv *CipherState) {
	tb.Helper()
	send, recv, err := hs.Split()
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	return send, recv
}

// TestDataVectors encrypts the inner TransportMessage of the secure-channel
// data vectors (protocol.md §10.5), both with the vector's key and with the
// states Split hands each side, which checks the reversed key order end to end.
func TestDataVectors(t *testing.T) {
	ini, res := vectorHandshakes(t, readVectors(t, "noise-xx-handshake-1.hex"))
	completeHandshake(t, ini, res)
	iSend, iRecv := mustSplit(t, ini)
	rSend, rRecv := mustSplit(t, res)

	tests := []struct {
		file       string
		send, recv *CipherState
		other      *CipherState // a state of the opposite direction
	}{
		{"sc-data-initiator-to-responder.hex", iSend, rRecv, rSend},
		{"sc-data-responder-to-initiator.hex", rSend, iRecv, iSend},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			v := readVectors(t, tt.file)
			key := v.key(t, "key")
			inner := v.get(t, "inner-plaintext")
			blob := v.get(t, "blob")
			if len(blob) < 2 {
				t.Fatalf("blob is %d bytes", len(blob))
			}
			n, ct := binary.BigEndian.Uint16(blob), blob[2:]
			if nonce := v.get(t, "aes-gcm-nonce"); !bytes.Equal(nonce, append(make([]byte, 10), blob[:2]...)) {
				t.Errorf("aes-gcm-nonce %x is not 00×10 ‖ blob counter %x", nonce, blob[:2])
			}
			if tt.send.Key() != key {
				t.Fatalf("Split gave the sender key %x, vector uses %x", tt.send.Key(), key)
			}

			byKey, err := NewCipherState(key)
			if err != nil {
				t.Fatal(err)
			}
			for name, cs := range map[string]*CipherState{"NewCipherState": byKey, "Split": tt.send} {
				if got := cs.Encrypt(nil, n, inner); !bytes.Equal(got, ct) {
					t.Errorf("%s: Encrypt(n=%d):\n got %x\nwant %x", name, n, got, ct)
				}
			}
			got, err := tt.recv.Decrypt(nil, n, ct)
			if err != nil {
				t.Fatalf("receiver Decrypt: %v", err)
			}
			if !bytes.Equal(got, inner) {
				t.Errorf("receiver Decrypt = %x, want %x", got, inner)
			}
			// The opposite direction's key must not open it: with Noise's
			// key order instead of Ockam's, this is the key that would be used.
			if _, err := tt.other.Decrypt(nil, n, ct); !errors.Is(err, ErrAuthentication) {
				t.Errorf("Decrypt with the opposite direction's key: err = %v, want ErrAuthentication", err)
			}
		})
	}
}

// completeHandshake runs M1..M3 with empty payloads between ini and res.
func completeHandshake(tb testing.TB, ini, res *HandshakeState) {
	tb.Helper()
	for i, pair := range [][2]*HandshakeState{{ini, res}, {res, ini}, {ini, res}} {
		msg, err := pair[0].WriteMessage(nil, nil)
		if err != nil {
			tb.Fatalf("write M%d: %v", i+1, err)
		}
		if _, err := pair[1].ReadMessage(nil, msg); err != nil {
			tb.Fatalf("read M%d: %v", i+1, err)
		}
	}
}
