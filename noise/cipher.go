package noise

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
)

const (
	// MaxNonce is the largest u16 data-message counter (protocol.md §10.5). A
	// Rust sender refuses to encrypt with n == MaxNonce and there is no rekey,
	// so a channel carries at most 65535 messages per direction. CipherState
	// itself accepts every nonce (a Rust receiver decrypts any nonce); the
	// sender's counter, in package securechannel, must stop before MaxNonce.
	MaxNonce = 65535

	// Overhead is the size of the AES-GCM tag appended to every ciphertext.
	Overhead = 16

	// MaxMessageLen is the largest handshake message, from Noise §3.
	MaxMessageLen = 65535
)

// CipherState is one direction of an Ockam secure channel after the handshake:
// AES-256-GCM under a fixed key, with the 12-byte nonce 00×10 ‖ u16 big-endian
// counter and empty associated data (protocol.md §10.5).
//
// Unlike a Noise CipherState it keeps no counter: the nonce is an argument,
// because Ockam carries it on the wire in front of each ciphertext and the
// receiver decrypts whatever nonce arrives. The caller must never encrypt two
// messages under the same nonce with the same CipherState.
//
// The zero value is not usable; obtain a CipherState from
// [HandshakeState.Split] or [NewCipherState]. A CipherState is immutable after
// construction and safe for concurrent use by multiple goroutines.
type CipherState struct {
	k    Key         // kept only for the tests' Key (export_test.go)
	aead cipher.AEAD // built once per key: no per-message cipher construction
}

// String describes c without its key.
func (c CipherState) String() string { return "noise.CipherState{key: REDACTED}" }

// GoString is String, for %#v.
func (c CipherState) GoString() string { return c.String() }

// Format prints c as String does for every verb, so no formatting of a
// CipherState, by pointer or by value, prints its key.
func (c CipherState) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// LogValue implements slog.LogValuer without the key.
func (c CipherState) LogValue() slog.Value { return slog.StringValue(c.String()) }

// NewCipherState returns a transport CipherState for key k. It fails only when
// the runtime refuses AES-GCM with caller-chosen nonces (GODEBUG=fips140=only).
func NewCipherState(k Key) (*CipherState, error) {
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	return &CipherState{k: k, aead: aead}, nil
}

// Encrypt seals plaintext with nonce n and appends ciphertext ‖ 16-byte tag to
// out, returning the extended slice. It allocates only when out lacks the
// capacity for len(plaintext)+Overhead more bytes. To encrypt in place, pass
// plaintext[:0] as out; otherwise the spare capacity of out must not overlap
// plaintext.
//
// Encrypt does not refuse n == MaxNonce; see MaxNonce.
func (c *CipherState) Encrypt(out []byte, n uint16, plaintext []byte) []byte {
	nonce := dataNonce(n)
	out = c.aead.Seal(out, nonce[:], plaintext, nil)
	noncePool.Put(nonce)
	return out
}

// Decrypt authenticates ciphertext (ciphertext ‖ tag) under nonce n and
// appends the plaintext to out, returning the extended slice. It returns
// ErrShortMessage when ciphertext is shorter than Overhead and
// ErrAuthentication when the tag does not verify; on error the spare capacity
// of out may have been overwritten. To decrypt in place, pass ciphertext[:0]
// as out; otherwise the spare capacity of out must not overlap ciphertext.
func (c *CipherState) Decrypt(out []byte, n uint16, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < Overhead {
		return nil, ErrShortMessage
	}
	nonce := dataNonce(n)
	p, err := c.aead.Open(out, nonce[:], ciphertext, nil)
	noncePool.Put(nonce)
	if err != nil {
		return nil, ErrAuthentication
	}
	return p, nil
}

// noncePool holds 12-byte nonce buffers. A nonce handed to the cipher.AEAD
// interface escapes to the heap, so a stack array would cost an allocation per
// message; pooling keeps Encrypt and Decrypt allocation-free while
// CipherState stays immutable and safe for concurrent use.
var noncePool = sync.Pool{New: func() any { return new([12]byte) }}

// dataNonce returns a pooled Ockam data nonce: 00×10 ‖ n as u16 big-endian.
// Return it with noncePool.Put.
func dataNonce(n uint16) *[12]byte {
	nonce := noncePool.Get().(*[12]byte)
	*nonce = [12]byte{}
	binary.BigEndian.PutUint16(nonce[10:], n)
	return nonce
}

// newAEAD builds AES-256-GCM with the standard 12-byte nonce and 16-byte tag.
func newAEAD(k Key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	return aead, nil
}
