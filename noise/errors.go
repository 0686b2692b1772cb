package noise

import "errors"

var (
	// ErrShortMessage is returned when a handshake message is shorter than its
	// pattern requires, or a ciphertext is shorter than the AEAD tag.
	ErrShortMessage = errors.New("noise: message is too short")

	// ErrMessageTooLarge is returned when a handshake message would exceed, or
	// exceeds, MaxMessageLen.
	ErrMessageTooLarge = errors.New("noise: message is too large")

	// ErrOutOfOrder is returned by WriteMessage when it is the peer's turn to
	// write, by ReadMessage when it is our turn to write, and by both after the
	// handshake is complete.
	ErrOutOfOrder = errors.New("noise: handshake message out of order")

	// ErrIncomplete is returned by Split before the handshake is complete.
	ErrIncomplete = errors.New("noise: handshake is not complete")

	// ErrAuthentication is returned when an AEAD ciphertext fails to
	// authenticate: a tampered message, the wrong key, nonce or peer.
	ErrAuthentication = errors.New("noise: message authentication failed")

	// ErrInvalidPublicKey is returned when a Diffie-Hellman with the peer's
	// public key yields the all-zero value (a low-order point).
	ErrInvalidPublicKey = errors.New("noise: invalid public key")

	// ErrKeyPairMismatch is returned by NewHandshake when a key pair's public
	// key is not the X25519 public key of its private key, including the zero
	// KeyPair.
	ErrKeyPairMismatch = errors.New("noise: public key does not match private key")
)
