package noise

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Key is a 32-byte X25519 private or public key, or an AES-256 key derived by
// Split. As an array it is comparable, usable as a map key and never aliased;
// like any value it is safe to share between goroutines. The zero value is the
// all-zero key, which PeerStatic returns before the peer's key is known.
type Key [32]byte

// KeyPair is an X25519 key pair. Private is the raw 32-byte scalar (clamped
// when used, as RFC 7748 requires); Public is its X25519 public key. The zero
// value is not a valid pair: NewHandshake rejects it. A KeyPair is a plain
// value, safe to copy and to share between goroutines.
type KeyPair struct {
	Private Key
	Public  Key
}

// String returns the public key only, as "noise.KeyPair{public: HEX,
// private: REDACTED}": a key pair never prints its private key.
func (kp KeyPair) String() string {
	return "noise.KeyPair{public: " + hex.EncodeToString(kp.Public[:]) + ", private: REDACTED}"
}

// GoString is String, for %#v.
func (kp KeyPair) GoString() string { return kp.String() }

// Format implements fmt.Formatter: every verb (%v, %+v, %#v, %s, %x, %q…)
// prints String, so formatting a KeyPair, or a struct holding one, never
// reveals the private key.
func (kp KeyPair) Format(f fmt.State, verb rune) { fmt.Fprint(f, kp.String()) }

// LogValue implements slog.LogValuer: only the public key is logged.
func (kp KeyPair) LogValue() slog.Value {
	return slog.GroupValue(slog.String("public", hex.EncodeToString(kp.Public[:])), slog.String("private", "REDACTED"))
}

// MarshalText implements encoding.TextMarshaler with String, so encoders
// (JSON, YAML) of structs holding a KeyPair print no secret either.
func (kp KeyPair) MarshalText() ([]byte, error) { return []byte(kp.String()), nil }

// Destroy overwrites the private key in place (best effort: copies made
// earlier are not reached).
func (kp *KeyPair) Destroy() { clear(kp.Private[:]) }

// GenerateKeyPair returns a new random X25519 key pair from crypto/rand.
func GenerateKeyPair() (KeyPair, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("noise: generate key: %w", err)
	}
	return keyPairOf(priv), nil
}

// NewKeyPair returns the key pair whose private key is private. It is how
// fixed keys are injected (protocol.md §11.9): Go 1.26's ecdh.GenerateKey
// ignores its random source, so vectors cannot be reproduced through it.
func NewKeyPair(private Key) (KeyPair, error) {
	priv, err := ecdh.X25519().NewPrivateKey(private[:])
	if err != nil {
		return KeyPair{}, fmt.Errorf("noise: %w", err)
	}
	return keyPairOf(priv), nil
}

func keyPairOf(priv *ecdh.PrivateKey) KeyPair {
	var kp KeyPair
	copy(kp.Private[:], priv.Bytes())
	copy(kp.Public[:], priv.PublicKey().Bytes())
	return kp
}

// privateKey checks that kp is consistent and returns its ecdh form.
func (kp KeyPair) privateKey() (*ecdh.PrivateKey, error) {
	priv, err := ecdh.X25519().NewPrivateKey(kp.Private[:])
	if err != nil {
		return nil, fmt.Errorf("noise: %w", err)
	}
	if Key(priv.PublicKey().Bytes()) != kp.Public {
		return nil, ErrKeyPairMismatch
	}
	return priv, nil
}

// Config configures one side of a handshake. NewHandshake only reads it and
// keeps no reference to it or its slices, so a Config may be reused and shared
// by concurrent NewHandshake calls. The zero value is not usable:
// StaticKeyPair is required.
type Config struct {
	// Initiator must be true on the side that writes the first message (M1),
	// the side that calls SecureChannel::create in Ockam terms, and false on
	// the listener's responder.
	Initiator bool

	// StaticKeyPair is this side's long-term key pair, sent encrypted in M2
	// (responder) or M3 (initiator). Ockam 2021 generates a fresh one per
	// channel when no identity is supplied. Required.
	StaticKeyPair KeyPair

	// EphemeralKeyPair, when non-nil, is used as this side's ephemeral key
	// pair instead of a fresh random one. Set it only in tests, to reproduce
	// vectors; reusing an ephemeral key across handshakes destroys forward
	// secrecy.
	EphemeralKeyPair *KeyPair

	// Prologue is data both sides must agree on; it is mixed into h before the
	// first message. Ockam uses an empty prologue.
	Prologue []byte
}

// token is a Noise message-pattern token (Noise §7.1).
type token uint8

const (
	tokenE  token = iota // e: ephemeral public key, in clear
	tokenS               // s: static public key, encrypted once a key exists
	tokenEE              // ee: DH(e, re)
	tokenES              // es: DH(initiator e, responder s)
	tokenSE              // se: DH(initiator s, responder e)
)

// patternXX is Noise §7.5 XX. Even-numbered messages are written by the
// initiator, odd-numbered ones by the responder.
var patternXX = [...][]token{
	{tokenE},                           // M1 -> e
	{tokenE, tokenEE, tokenS, tokenES}, // M2 <- e, ee, s, es
	{tokenS, tokenSE},                  // M3 -> s, se
}

// HandshakeState is one side of a Noise XX handshake (Noise §5.3), a pure
// state machine: feed it the peer's messages with ReadMessage, send what
// WriteMessage produces, and call Split once Complete reports true.
//
// A call that fails leaves the state exactly as it was, so a forged, truncated
// or corrupted message does not end the handshake: the genuine message can
// still be read afterwards. Whether to keep waiting is the caller's decision.
//
// The zero value is not usable; create one with NewHandshake. A HandshakeState
// is not safe for concurrent use.
type HandshakeState struct {
	ss        symmetricState
	initiator bool
	s, e      *ecdh.PrivateKey // local static and ephemeral keys; immutable
	sPub      Key              // public key of s
	ePub      Key              // public key of e
	re, rs    Key              // remote ephemeral and static public keys, once read
	msgIndex  int              // messages written or read so far: 0..len(patternXX)
}

// String describes hs by its role and progress only: a handshake holds the
// chaining key, the handshake cipher key and private keys, which no
// formatting prints.
func (hs HandshakeState) String() string {
	role := "responder"
	if hs.initiator {
		role = "initiator"
	}
	return fmt.Sprintf("noise.HandshakeState{%s, messages: %d, secrets: REDACTED}", role, hs.msgIndex)
}

// GoString is String, for %#v.
func (hs HandshakeState) GoString() string { return hs.String() }

// Format prints hs as String does for every verb (%v, %+v, %#v, %x…), by
// pointer or by value, so no formatting reveals its secrets.
func (hs HandshakeState) Format(f fmt.State, verb rune) { fmt.Fprint(f, hs.String()) }

// LogValue implements slog.LogValuer with String.
func (hs HandshakeState) LogValue() slog.Value { return slog.StringValue(hs.String()) }

// NewHandshake starts a handshake with cfg. It fails when a key pair in cfg is
// inconsistent (ErrKeyPairMismatch) or a random ephemeral key cannot be made.
func NewHandshake(cfg Config) (*HandshakeState, error) {
	s, err := cfg.StaticKeyPair.privateKey()
	if err != nil {
		return nil, fmt.Errorf("static key: %w", err)
	}
	var ekp KeyPair
	defer ekp.Destroy() // the ecdh key below holds the private key from here on
	if cfg.EphemeralKeyPair != nil {
		ekp = *cfg.EphemeralKeyPair
	} else if ekp, err = GenerateKeyPair(); err != nil {
		return nil, err
	}
	e, err := ekp.privateKey()
	if err != nil {
		return nil, fmt.Errorf("ephemeral key: %w", err)
	}
	hs := &HandshakeState{
		initiator: cfg.Initiator,
		s:         s,
		e:         e,
		sPub:      cfg.StaticKeyPair.Public,
		ePub:      ekp.Public,
	}
	hs.ss.initializeSymmetric(cfg.Prologue)
	return hs, nil
}

// WriteMessage appends the next handshake message, carrying payload, to out
// and returns the extended slice. It returns ErrOutOfOrder when it is not this
// side's turn to write, and ErrMessageTooLarge when the message would exceed
// MaxMessageLen. Ockam sends empty payloads. The payload of M1 travels in clear;
// those of M2 and M3 are encrypted, but M2's is not yet authenticated to the
// initiator's identity.
//
// On error the state is unchanged and the spare capacity of out may have been
// overwritten. out and payload must not overlap.
func (hs *HandshakeState) WriteMessage(out, payload []byte) ([]byte, error) {
	if !hs.myTurn(true) {
		return nil, ErrOutOfOrder
	}
	if len(payload) > MaxMessageLen {
		return nil, ErrMessageTooLarge
	}
	next := *hs // work on a copy; commit only on success
	start := len(out)
	for _, tok := range patternXX[hs.msgIndex] {
		switch tok {
		case tokenE:
			out = append(out, next.ePub[:]...)
			next.ss.mixHash(next.ePub[:])
		case tokenS:
			out = next.ss.encryptAndHash(out, next.sPub[:])
		default:
			if err := next.mixDH(tok); err != nil {
				return nil, err
			}
		}
	}
	out = next.ss.encryptAndHash(out, payload)
	if len(out)-start > MaxMessageLen {
		return nil, ErrMessageTooLarge
	}
	next.msgIndex++
	*hs = next
	return out, nil
}

// ReadMessage processes the peer's next handshake message msg and appends its
// payload to out, returning the extended slice. It returns ErrOutOfOrder when
// it is this side's turn to write, ErrMessageTooLarge or ErrShortMessage for a
// message of impossible size, ErrAuthentication when an encrypted part fails
// to authenticate, and ErrInvalidPublicKey for a low-order peer key.
//
// On error the state is unchanged, so the genuine message can still be read,
// and the spare capacity of out may have been overwritten. out and msg must
// not overlap.
func (hs *HandshakeState) ReadMessage(out, msg []byte) ([]byte, error) {
	if !hs.myTurn(false) {
		return nil, ErrOutOfOrder
	}
	if len(msg) > MaxMessageLen {
		return nil, ErrMessageTooLarge
	}
	next := *hs // work on a copy; commit only on success
	for _, tok := range patternXX[hs.msgIndex] {
		switch tok {
		case tokenE:
			if len(msg) < len(next.re) {
				return nil, ErrShortMessage
			}
			next.re = Key(msg[:len(next.re)])
			msg = msg[len(next.re):]
			next.ss.mixHash(next.re[:])
		case tokenS:
			n := len(next.rs) + next.ss.overhead()
			if len(msg) < n {
				return nil, ErrShortMessage
			}
			var rs Key
			if _, err := next.ss.decryptAndHash(rs[:0], msg[:n]); err != nil {
				return nil, err
			}
			next.rs = rs
			msg = msg[n:]
		default:
			if err := next.mixDH(tok); err != nil {
				return nil, err
			}
		}
	}
	out, err := next.ss.decryptAndHash(out, msg)
	if err != nil {
		return nil, err
	}
	next.msgIndex++
	*hs = next
	return out, nil
}

// myTurn reports whether this side may write (write == true) or read the next
// message. Every call is out of turn once the handshake is complete.
func (hs *HandshakeState) myTurn(write bool) bool {
	if hs.msgIndex >= len(patternXX) {
		return false
	}
	initiatorWrites := hs.msgIndex%2 == 0
	return (hs.initiator == initiatorWrites) == write
}

// mixDH performs the DH of an ee, es or se token from this side's point of
// view and mixes the result into the chaining key.
func (hs *HandshakeState) mixDH(tok token) error {
	var priv *ecdh.PrivateKey
	var pub Key
	switch {
	case tok == tokenEE:
		priv, pub = hs.e, hs.re
	case tok == tokenES && hs.initiator:
		priv, pub = hs.e, hs.rs
	case tok == tokenES:
		priv, pub = hs.s, hs.re
	case tok == tokenSE && hs.initiator:
		priv, pub = hs.s, hs.re
	case tok == tokenSE:
		priv, pub = hs.e, hs.rs
	default:
		panic(fmt.Sprintf("noise: unknown token %d", tok))
	}
	remote, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return ErrInvalidPublicKey
	}
	shared, err := priv.ECDH(remote) // fails on an all-zero (low-order) result
	if err != nil {
		return ErrInvalidPublicKey
	}
	return hs.ss.mixKey(shared)
}

// Destroy clears the handshake's secrets (chaining key, handshake cipher
// key, remote keys) and drops its private keys, once Split has been called
// or the handshake is abandoned. Best effort: Go cannot wipe the memory of
// ecdh keys or of copies made earlier. After Destroy every method fails or
// returns zero values.
func (hs *HandshakeState) Destroy() {
	clear(hs.ss.ck[:])
	clear(hs.ss.k[:])
	hs.ss.aead = nil
	hs.s, hs.e = nil, nil
	hs.msgIndex = len(patternXX) + 1 // out of turn for everything, and not Complete
}

// Complete reports whether all three messages have been written or read, so
// that Split may be called.
func (hs *HandshakeState) Complete() bool {
	return hs.msgIndex == len(patternXX)
}

// HandshakeHash returns the current handshake hash h. After Complete it is
// equal on both sides and unique to the session; Ockam returns it as auth_hash
// for higher layers to sign or compare.
func (hs *HandshakeState) HandshakeHash() [32]byte {
	return hs.ss.h
}

// PeerStatic returns the peer's static public key: the zero Key until it has
// been read (M2 for the initiator, M3 for the responder). XX authenticates
// possession of the key, not whose key it is: check it against an identity
// before trusting the channel.
func (hs *HandshakeState) PeerStatic() Key {
	return hs.rs
}

// LocalStatic returns this side's static public key.
func (hs *HandshakeState) LocalStatic() Key {
	return hs.sPub
}

// Split derives the two transport CipherStates once the handshake is complete,
// and returns ErrIncomplete before. It may be called more than once; each call
// returns new states with the same keys.
//
// OCKAM DEVIATION (protocol.md §10.2): Split computes k1 ‖ k2 = HKDF(ck, empty)
// as Noise §5.2 does, but assigns them the other way round. Noise has the
// initiator send with k1; Ockam's Rust (finalize_initiator/finalize_responder
// in xx/state.rs) and Elixir code have the INITIATOR send with k2 and receive
// with k1, and the RESPONDER send with k1 and receive with k2. Both sides of a
// connection therefore agree, and interoperate with Ockam, only with this
// order; a standard Noise peer sees send and receive swapped.
func (hs *HandshakeState) Split() (send, recv *CipherState, err error) {
	if !hs.Complete() {
		return nil, nil, ErrIncomplete
	}
	k1, k2, err := hs.ss.split()
	if err != nil {
		return nil, nil, err
	}
	defer func() { clear(k1[:]); clear(k2[:]) }() // the CipherStates hold their own copies
	sendKey, recvKey := k1, k2                    // responder
	if hs.initiator {
		sendKey, recvKey = k2, k1
	}
	if send, err = NewCipherState(sendKey); err != nil {
		return nil, nil, err
	}
	if recv, err = NewCipherState(recvKey); err != nil {
		return nil, nil, err
	}
	return send, recv, nil
}
