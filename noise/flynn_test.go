package noise

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	flynn "github.com/flynn/noise"
)

// TestDifferentialFlynn runs random handshakes between this package and
// github.com/flynn/noise v1.1.0, a standard Noise implementation, in both
// roles: random keys, prologues and payloads. The handshakes must agree byte
// for byte in effect (each side reads the other's messages and payloads),
// end with equal hashes, and the transport keys must match flynn's once the
// Ockam key order is applied.
func TestDifferentialFlynn(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewChaCha8(seedBytes(seed)))
	suite := flynn.NewCipherSuite(flynn.DH25519, flynn.CipherAESGCM, flynn.HashSHA256)

	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	for round := range rounds {
		oursInitiates := round%2 == 0
		prologue := randomBytes(rng, rng.IntN(3)*rng.IntN(40)) // often empty
		payloads := [3][]byte{}
		for i := range payloads {
			if rng.IntN(3) > 0 { // Ockam's empty payloads a third of the time
				payloads[i] = randomBytes(rng, rng.IntN(600))
			}
		}

		ourStatic := randomKeyPair(t, rng)
		ourEphemeral := randomKeyPair(t, rng)
		ours, err := NewHandshake(Config{
			Initiator:        oursInitiates,
			StaticKeyPair:    ourStatic,
			EphemeralKeyPair: &ourEphemeral,
			Prologue:         prologue,
		})
		if err != nil {
			t.Fatal(err)
		}
		theirStatic := randomKeyPair(t, rng)
		theirs, err := flynn.NewHandshakeState(flynn.Config{
			CipherSuite:   suite,
			Random:        rand.NewChaCha8(seedBytes(rng.Uint64())), // flynn's ephemeral key
			Pattern:       flynn.HandshakeXX,
			Initiator:     !oursInitiates,
			Prologue:      prologue,
			StaticKeypair: flynn.DHKey{Private: bytes.Clone(theirStatic.Private[:]), Public: bytes.Clone(theirStatic.Public[:])},
		})
		if err != nil {
			t.Fatal(err)
		}

		// Noise's cs1 carries initiator → responder traffic, cs2 the reverse.
		var cs1, cs2 *flynn.CipherState
		for i := range 3 {
			ourTurn := (i%2 == 0) == oursInitiates
			var msg, got []byte
			if ourTurn {
				if msg, err = ours.WriteMessage(nil, payloads[i]); err != nil {
					t.Fatalf("round %d M%d: our WriteMessage: %v", round, i+1, err)
				}
				got, cs1, cs2, err = theirs.ReadMessage(nil, msg)
			} else {
				if msg, cs1, cs2, err = theirs.WriteMessage(nil, payloads[i]); err != nil {
					t.Fatalf("round %d M%d: flynn WriteMessage: %v", round, i+1, err)
				}
				got, err = ours.ReadMessage(nil, msg)
			}
			if err != nil {
				t.Fatalf("round %d (our side initiates: %v) M%d: read: %v", round, oursInitiates, i+1, err)
			}
			if !bytes.Equal(got, payloads[i]) {
				t.Fatalf("round %d M%d: payload %x, want %x", round, i+1, got, payloads[i])
			}
			if h := ours.HandshakeHash(); !bytes.Equal(h[:], theirs.ChannelBinding()) {
				t.Fatalf("round %d after M%d: h = %x, flynn %x", round, i+1, h, theirs.ChannelBinding())
			}
		}
		if !ours.Complete() || cs1 == nil || cs2 == nil {
			t.Fatalf("round %d: handshake incomplete (ours %v, flynn states %v)", round, ours.Complete(), cs1 != nil)
		}
		if got := ours.PeerStatic(); !bytes.Equal(got[:], theirStatic.Public[:]) {
			t.Fatalf("round %d: PeerStatic = %x, want %x", round, got, theirStatic.Public)
		}
		if !bytes.Equal(theirs.PeerStatic(), ourStatic.Public[:]) {
			t.Fatalf("round %d: flynn PeerStatic = %x, want %x", round, theirs.PeerStatic(), ourStatic.Public)
		}

		// Ockam order (protocol.md §10.2): the initiator sends with k2.
		k1, k2 := Key(cs1.UnsafeKey()), Key(cs2.UnsafeKey())
		send, recv := mustSplit(t, ours)
		wantSend, wantRecv := k1, k2 // we are the responder
		if oursInitiates {
			wantSend, wantRecv = k2, k1
		}
		if send.Key() != wantSend || recv.Key() != wantRecv {
			t.Fatalf("round %d (our side initiates: %v): send/recv keys %x/%x, want %x/%x",
				round, oursInitiates, send.Key(), recv.Key(), wantSend, wantRecv)
		}

		// Transport messages with explicit nonces through flynn's raw ciphers
		// (its AESGCM nonce 00×4 ‖ u64 BE equals ours for u16 counters). With
		// Ockam's order the initiator → responder direction uses k2 (flynn's
		// cs2) and the reverse k1 (cs1): the swap a flynn-based peer needs.
		theirSend, theirRecv := cs1.Cipher(), cs2.Cipher() // flynn responds
		if !oursInitiates {
			theirSend, theirRecv = cs2.Cipher(), cs1.Cipher() // flynn initiates
		}
		for range 4 {
			n := uint16(rng.IntN(MaxNonce + 1))
			pt := randomBytes(rng, rng.IntN(2000))
			ct := send.Encrypt(nil, n, pt)
			if got, err := theirRecv.Decrypt(nil, uint64(n), nil, ct); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("round %d: flynn could not decrypt our n=%d message: %v", round, n, err)
			}
			ct = theirSend.Encrypt(nil, uint64(n), nil, pt)
			if got, err := recv.Decrypt(nil, n, ct); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("round %d: could not decrypt flynn's n=%d message: %v", round, n, err)
			}
		}
	}
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	return b
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func randomKeyPair(tb testing.TB, rng *rand.Rand) KeyPair {
	tb.Helper()
	var priv Key
	for i := 0; i < len(priv); i += 8 {
		binary.LittleEndian.PutUint64(priv[i:], rng.Uint64())
	}
	kp, err := NewKeyPair(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return kp
}
