package noise

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// protocolName is at most 32 bytes (HASHLEN), so Noise §5.2 InitializeSymmetric
// zero-pads it to 32 bytes instead of hashing it.
const protocolName = "Noise_XX_25519_AESGCM_SHA256"

// symmetricState is the SymmetricState of Noise §5.2 with its handshake
// CipherState (§5.1) folded in. It holds only values and an immutable AEAD, so
// a plain struct copy is a snapshot: HandshakeState relies on this to leave
// itself untouched when a message fails.
type symmetricState struct {
	ck   [32]byte    // chaining key
	h    [32]byte    // handshake hash
	k    Key         // handshake cipher key, valid when aead != nil
	n    uint64      // handshake cipher nonce: 00×4 ‖ u64 big-endian
	aead cipher.AEAD // nil until the first MixKey (Noise: HasKey() == false)
}

// initializeSymmetric sets h = ck = the padded protocol name, then mixes in
// the prologue (Noise §5.3 Initialize).
func (s *symmetricState) initializeSymmetric(prologue []byte) {
	*s = symmetricState{}
	copy(s.h[:], protocolName)
	s.ck = s.h
	s.mixHash(prologue)
}

// mixHash sets h = SHA-256(h ‖ data).
func (s *symmetricState) mixHash(data []byte) {
	d := sha256.New()
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

// mixKey sets ck, k = HKDF(ck, ikm) and resets the nonce.
func (s *symmetricState) mixKey(ikm []byte) error {
	ck, k, err := hkdf2(s.ck, ikm)
	if err != nil {
		return err
	}
	aead, err := newAEAD(k)
	if err != nil {
		return err
	}
	s.ck, s.k, s.n, s.aead = ck, k, 0, aead
	return nil
}

// encryptAndHash appends ENCRYPT(k, n++, h, plaintext), or plaintext itself
// before the first MixKey, to out and mixes what it appended into h.
func (s *symmetricState) encryptAndHash(out, plaintext []byte) []byte {
	start := len(out)
	if s.aead == nil {
		out = append(out, plaintext...)
	} else {
		out = s.aead.Seal(out, s.nonce(), plaintext, s.h[:])
		s.n++
	}
	s.mixHash(out[start:])
	return out
}

// decryptAndHash is the inverse of encryptAndHash: it appends the plaintext of
// data to out and mixes data into h. On error s is unchanged.
func (s *symmetricState) decryptAndHash(out, data []byte) ([]byte, error) {
	if s.aead == nil {
		s.mixHash(data)
		return append(out, data...), nil
	}
	if len(data) < Overhead {
		return nil, ErrShortMessage
	}
	out, err := s.aead.Open(out, s.nonce(), data, s.h[:])
	if err != nil {
		return nil, ErrAuthentication
	}
	s.n++
	s.mixHash(data)
	return out, nil
}

// overhead is how many bytes encryptAndHash adds to its plaintext now.
func (s *symmetricState) overhead() int {
	if s.aead == nil {
		return 0
	}
	return Overhead
}

// nonce is the standard Noise AESGCM nonce: 32 zero bits ‖ n as u64 big-endian.
func (s *symmetricState) nonce() []byte {
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], s.n)
	return nonce[:]
}

// split returns k1, k2 = HKDF(ck, empty) (Noise §5.2 Split). The order in
// which they are used is Ockam's; see HandshakeState.Split.
func (s *symmetricState) split() (k1, k2 Key, err error) {
	return hkdf2(s.ck, nil)
}

// hkdf2 is Noise's HKDF(chaining_key, input_key_material, 2): RFC 5869
// HKDF-SHA256 with salt = ck and empty info, whose 64 output bytes are
// output1 ‖ output2.
func hkdf2(ck [32]byte, ikm []byte) (out1, out2 [32]byte, err error) {
	okm, err := hkdf.Key(sha256.New, ikm, ck[:], "", 64)
	if err != nil {
		return out1, out2, fmt.Errorf("noise: hkdf: %w", err)
	}
	copy(out1[:], okm[:32])
	copy(out2[:], okm[32:])
	return out1, out2, nil
}
