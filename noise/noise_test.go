package noise

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// snapshot is the comparable part of a HandshakeState: everything a failed
// call must leave untouched.
type snapshot struct {
	ck, h, k Key
	n        uint64
	hasKey   bool
	re, rs   Key
	msgIndex int
}

func snap(hs *HandshakeState) snapshot {
	return snapshot{
		ck: hs.ss.ck, h: hs.ss.h, k: hs.ss.k, n: hs.ss.n, hasKey: hs.ss.aead != nil,
		re: hs.re, rs: hs.rs, msgIndex: hs.msgIndex,
	}
}

// vectorMessages returns handshake-1's fixed-key sides and its genuine M1..M3.
func vectorMessages(tb testing.TB) (ini, res *HandshakeState, m [3][]byte) {
	tb.Helper()
	v := readVectors(tb, "noise-xx-handshake-1.hex")
	ini, res = vectorHandshakes(tb, v)
	return ini, res, [3][]byte{v.get(tb, "m1"), v.get(tb, "m2"), v.get(tb, "m3")}
}

func flip(msg []byte, i int) []byte {
	bad := bytes.Clone(msg)
	bad[i] ^= 0x01
	return bad
}

// TestReadMessageBadInput feeds every handshake message truncated, extended
// and with each byte flipped, checks the error, checks that the state did not
// move, and then completes the handshake with the genuine message and the
// vector's final hash.
func TestReadMessageBadInput(t *testing.T) {
	type badMsg struct {
		name    string
		msg     []byte
		wantErr []error // any of these
	}
	_, _, m := vectorMessages(t)
	badInputs := func(i int) []badMsg {
		genuine := m[i]
		var bad []badMsg
		minLen := []int{32, 96, 64}[i]
		for _, n := range []int{0, 1, 31, 32, 47, 48, 63, 64, 79, 80, 95} {
			if n < minLen {
				bad = append(bad, badMsg{"short", genuine[:n], []error{ErrShortMessage}})
			}
		}
		bad = append(bad, badMsg{"too large", make([]byte, MaxMessageLen+1), []error{ErrMessageTooLarge}})
		if i == 0 {
			return bad // M1 is not authenticated: any 32+ bytes are a valid M1
		}
		// An extra byte lands in the payload ciphertext and breaks its tag.
		bad = append(bad, badMsg{"trailing byte", append(bytes.Clone(genuine), 0), []error{ErrAuthentication}})
		for j := range genuine {
			// A flipped bit in M2's e changes the DH result, which may in
			// theory be low order; everything else must fail authentication.
			bad = append(bad, badMsg{"flip", flip(genuine, j), []error{ErrAuthentication, ErrInvalidPublicKey}})
		}
		if i == 1 {
			lowOrder := bytes.Clone(genuine)
			clear(lowOrder[:32]) // the all-zero u-coordinate gives an all-zero DH
			bad = append(bad, badMsg{"low-order e", lowOrder, []error{ErrInvalidPublicKey}})
		}
		return bad
	}

	for i, name := range []string{"M1", "M2", "M3"} {
		t.Run(name, func(t *testing.T) {
			ini, res, m := vectorMessages(t)
			for j := range 3 {
				w, r := ini, res
				if j == 1 {
					w, r = res, ini
				}
				msg, err := w.WriteMessage(nil, nil)
				if err != nil {
					t.Fatalf("write M%d: %v", j+1, err)
				}
				if !bytes.Equal(msg, m[j]) {
					t.Fatalf("M%d differs from the vector", j+1)
				}
				if j == i {
					before := snap(r)
					for _, bad := range badInputs(i) {
						out := make([]byte, 0, 8)
						got, err := r.ReadMessage(out, bad.msg)
						if !errorIsAny(err, bad.wantErr) {
							t.Errorf("%s (%d bytes): err = %v, want one of %v", bad.name, len(bad.msg), err, bad.wantErr)
						}
						if got != nil {
							t.Errorf("%s: returned %d bytes with an error, want nil", bad.name, len(got))
						}
						if after := snap(r); after != before {
							t.Fatalf("%s: failed ReadMessage changed the state:\n got %+v\nwant %+v", bad.name, after, before)
						}
					}
				}
				// The genuine message still works and the handshake completes.
				if _, err := r.ReadMessage(nil, msg); err != nil {
					t.Fatalf("genuine M%d: %v", j+1, err)
				}
			}
			want := readVectors(t, "noise-xx-handshake-1.hex").key(t, "handshake-hash")
			if ini.HandshakeHash() != want || res.HandshakeHash() != want {
				t.Errorf("final h = %x / %x, want %x", ini.HandshakeHash(), res.HandshakeHash(), want)
			}
		})
	}
}

func errorIsAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestTamperedM1 shows that M1, though unauthenticated, is bound by h: a
// responder that accepted a modified M1 produces an M2 the initiator rejects.
func TestTamperedM1(t *testing.T) {
	for _, tamper := range []struct {
		name string
		fn   func(m1 []byte) []byte
	}{
		{"flipped e", func(m1 []byte) []byte { return flip(m1, 7) }},
		{"appended payload", func(m1 []byte) []byte { return append(bytes.Clone(m1), "x"...) }},
	} {
		t.Run(tamper.name, func(t *testing.T) {
			ini, res, m := vectorMessages(t)
			if _, err := ini.WriteMessage(nil, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := res.ReadMessage(nil, tamper.fn(m[0])); err != nil {
				t.Fatalf("responder rejected a modified M1: %v (M1 has no authentication)", err)
			}
			m2, err := res.WriteMessage(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ini.ReadMessage(nil, m2); !errors.Is(err, ErrAuthentication) {
				t.Errorf("initiator read M2 after a modified M1: err = %v, want ErrAuthentication", err)
			}
		})
	}
}

// TestLowOrderM1 checks that a responder given an all-zero ephemeral key
// refuses to write M2 rather than mixing an all-zero DH into the key.
func TestLowOrderM1(t *testing.T) {
	_, res, _ := vectorMessages(t)
	if _, err := res.ReadMessage(nil, make([]byte, 32)); err != nil {
		t.Fatalf("read M1: %v", err)
	}
	before := snap(res)
	if _, err := res.WriteMessage(nil, nil); !errors.Is(err, ErrInvalidPublicKey) {
		t.Errorf("write M2: err = %v, want ErrInvalidPublicKey", err)
	}
	if snap(res) != before {
		t.Errorf("failed WriteMessage changed the state")
	}
}

func TestOutOfOrder(t *testing.T) {
	ini, res, _ := vectorMessages(t)
	step := func(name string, fn func() ([]byte, error), wantErr error) {
		t.Helper()
		_, err := fn()
		if !errors.Is(err, wantErr) {
			t.Fatalf("%s: err = %v, want %v", name, err, wantErr)
		}
	}
	var msg []byte
	write := func(hs *HandshakeState) func() ([]byte, error) {
		return func() ([]byte, error) {
			out, err := hs.WriteMessage(nil, nil)
			if err == nil {
				msg = out
			}
			return out, err
		}
	}
	read := func(hs *HandshakeState) func() ([]byte, error) {
		return func() ([]byte, error) { return hs.ReadMessage(nil, msg) }
	}
	splitErr := func(hs *HandshakeState) error { _, _, err := hs.Split(); return err }

	step("responder writes first", write(res), ErrOutOfOrder)
	step("initiator reads first", func() ([]byte, error) { return ini.ReadMessage(nil, make([]byte, 96)) }, ErrOutOfOrder)
	if err := splitErr(ini); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Split before M1: err = %v, want ErrIncomplete", err)
	}
	step("initiator writes M1", write(ini), nil)
	step("initiator writes twice", write(ini), ErrOutOfOrder)
	step("responder reads M1", read(res), nil)
	step("responder reads twice", read(res), ErrOutOfOrder)
	step("responder writes M2", write(res), nil)
	step("initiator reads M2", read(ini), nil)
	if ini.Complete() || res.Complete() {
		t.Fatalf("Complete() true after M2")
	}
	if err := splitErr(ini); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Split after M2: err = %v, want ErrIncomplete", err)
	}
	step("responder writes again", write(res), ErrOutOfOrder)
	step("initiator writes M3", write(ini), nil)
	step("responder reads M3", read(res), nil)
	for name, hs := range map[string]*HandshakeState{"initiator": ini, "responder": res} {
		if !hs.Complete() {
			t.Fatalf("%s not complete after M3", name)
		}
		step(name+" writes after completion", write(hs), ErrOutOfOrder)
		step(name+" reads after completion", func() ([]byte, error) { return hs.ReadMessage(nil, make([]byte, 64)) }, ErrOutOfOrder)
		if err := splitErr(hs); err != nil {
			t.Fatalf("%s Split: %v", name, err)
		}
	}
}

func TestMessageSizeLimit(t *testing.T) {
	tests := []struct {
		name     string
		msgIndex int // 0: M1 by the initiator, 1: M2 by the responder
		payload  int
		wantErr  error
	}{
		{"M1 at limit", 0, MaxMessageLen - 32, nil},
		{"M1 over limit", 0, MaxMessageLen - 31, ErrMessageTooLarge},
		{"M2 at limit", 1, MaxMessageLen - 96, nil},
		{"M2 over limit", 1, MaxMessageLen - 95, ErrMessageTooLarge},
		{"payload over limit", 0, MaxMessageLen + 1, ErrMessageTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ini, res, m := vectorMessages(t)
			writer, reader := ini, res
			if tt.msgIndex == 1 {
				if _, err := ini.WriteMessage(nil, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := res.ReadMessage(nil, m[0]); err != nil {
					t.Fatal(err)
				}
				writer, reader = res, ini
			}
			payload := bytes.Repeat([]byte{'p'}, tt.payload)
			before := snap(writer)
			msg, err := writer.WriteMessage(nil, payload)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteMessage: err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if snap(writer) != before {
					t.Errorf("failed WriteMessage changed the state")
				}
				return
			}
			if len(msg) != MaxMessageLen {
				t.Errorf("message is %d bytes, want %d", len(msg), MaxMessageLen)
			}
			got, err := reader.ReadMessage(nil, msg)
			if err != nil || !bytes.Equal(got, payload) {
				t.Errorf("ReadMessage: %d bytes, err %v; want the %d-byte payload", len(got), err, len(payload))
			}
		})
	}
}

func TestPrologueMismatch(t *testing.T) {
	ini, res := newPair(t, []byte("prologue A"), []byte("prologue B"))
	m1, err := ini.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, err := res.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ini.ReadMessage(nil, m2); !errors.Is(err, ErrAuthentication) {
		t.Errorf("M2 under a different prologue: err = %v, want ErrAuthentication", err)
	}
}

// newPair returns an initiator and a responder with random keys.
func newPair(tb testing.TB, iPrologue, rPrologue []byte) (ini, res *HandshakeState) {
	tb.Helper()
	hs := func(initiator bool, prologue []byte) *HandshakeState {
		kp, err := GenerateKeyPair()
		if err != nil {
			tb.Fatal(err)
		}
		h, err := NewHandshake(Config{Initiator: initiator, StaticKeyPair: kp, Prologue: prologue})
		if err != nil {
			tb.Fatal(err)
		}
		return h
	}
	return hs(true, iPrologue), hs(false, rPrologue)
}

func TestRandomHandshake(t *testing.T) {
	ini, res := newPair(t, nil, nil)
	if ini.ePub == res.ePub || ini.sPub == res.sPub {
		t.Fatal("two random key pairs are equal")
	}
	completeHandshake(t, ini, res)
	if ini.HandshakeHash() != res.HandshakeHash() {
		t.Fatalf("hashes differ: %x / %x", ini.HandshakeHash(), res.HandshakeHash())
	}
	iSend, iRecv := mustSplit(t, ini)
	rSend, rRecv := mustSplit(t, res)
	for _, d := range []struct {
		name       string
		send, recv *CipherState
	}{{"initiator to responder", iSend, rRecv}, {"responder to initiator", rSend, iRecv}} {
		ct := d.send.Encrypt(nil, 7, []byte("hello"))
		pt, err := d.recv.Decrypt(nil, 7, ct)
		if err != nil || string(pt) != "hello" {
			t.Errorf("%s: Decrypt = %q, %v; want \"hello\"", d.name, pt, err)
		}
	}
	if iSend.Key() == iRecv.Key() {
		t.Errorf("send and receive keys are equal")
	}
}

func TestConfigErrors(t *testing.T) {
	good, err := NewKeyPair(Key{1})
	if err != nil {
		t.Fatal(err)
	}
	mismatched := good
	mismatched.Public[0] ^= 1
	tests := []struct {
		name string
		cfg  Config
	}{
		{"zero static", Config{}},
		{"mismatched static", Config{StaticKeyPair: mismatched}},
		{"zero ephemeral", Config{StaticKeyPair: good, EphemeralKeyPair: &KeyPair{}}},
		{"mismatched ephemeral", Config{StaticKeyPair: good, EphemeralKeyPair: &mismatched}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewHandshake(tt.cfg); !errors.Is(err, ErrKeyPairMismatch) {
				t.Errorf("err = %v, want ErrKeyPairMismatch", err)
			}
		})
	}
}

func TestKeyPairs(t *testing.T) {
	a, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("GenerateKeyPair returned the same pair twice")
	}
	again, err := NewKeyPair(a.Private)
	if err != nil {
		t.Fatal(err)
	}
	if again != a {
		t.Errorf("NewKeyPair(a.Private) = %x, want %x", again, a)
	}
}

func TestDecryptBadInput(t *testing.T) {
	v := readVectors(t, "sc-data-initiator-to-responder.hex")
	cs, err := NewCipherState(v.key(t, "key"))
	if err != nil {
		t.Fatal(err)
	}
	ct := v.get(t, "blob")[2:]
	type bad struct {
		name    string
		n       uint16
		ct      []byte
		wantErr error
	}
	tests := []bad{
		{"empty", 0, nil, ErrShortMessage},
		{"shorter than tag", 0, ct[:Overhead-1], ErrShortMessage},
		{"tag only", 0, ct[len(ct)-Overhead:], ErrAuthentication},
		{"truncated", 0, ct[:len(ct)-1], ErrAuthentication},
		{"extended", 0, append(bytes.Clone(ct), 0), ErrAuthentication},
		{"wrong nonce 1", 1, ct, ErrAuthentication},
		{"wrong nonce 256", 256, ct, ErrAuthentication},
		{"wrong nonce max", MaxNonce, ct, ErrAuthentication},
	}
	for i := range ct {
		tests = append(tests, bad{"flip", 0, flip(ct, i), ErrAuthentication})
	}
	for _, tt := range tests {
		got, err := cs.Decrypt(make([]byte, 0, 64), tt.n, tt.ct)
		if !errors.Is(err, tt.wantErr) || got != nil {
			t.Errorf("%s: Decrypt = %d bytes, %v; want nil, %v", tt.name, len(got), err, tt.wantErr)
		}
	}
	if _, err := cs.Decrypt(nil, 0, ct); err != nil {
		t.Errorf("genuine ciphertext after bad ones: %v", err)
	}
}

// TestCipherStateInPlace checks the documented in-place use: out = text[:0].
func TestCipherStateInPlace(t *testing.T) {
	cs, err := NewCipherState(Key{9})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("in-place plaintext")
	buf := make([]byte, len(want), len(want)+Overhead)
	copy(buf, want)
	ct := cs.Encrypt(buf[:0], 3, buf)
	if &ct[0] != &buf[0] {
		t.Fatal("Encrypt reallocated despite enough capacity")
	}
	pt, err := cs.Decrypt(ct[:0], 3, ct)
	if err != nil || !bytes.Equal(pt, want) {
		t.Fatalf("Decrypt in place = %q, %v; want %q", pt, err, want)
	}
}

// TestCipherStateConcurrent backs the doc claim that a CipherState is safe
// for concurrent use (run with -race).
func TestCipherStateConcurrent(t *testing.T) {
	cs, err := NewCipherState(Key{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				n := uint16(g*100 + i)
				msg := []byte{byte(g), byte(i)}
				ct := cs.Encrypt(nil, n, msg)
				pt, err := cs.Decrypt(nil, n, ct)
				if err != nil || !bytes.Equal(pt, msg) {
					t.Errorf("goroutine %d message %d: %x, %v", g, i, pt, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
