// Package noise implements the Noise_XX_25519_AESGCM_SHA256 handshake and the
// AES-256-GCM transport cipher of the 2021 Ockam secure channel, as a pure state
// machine: it never reads or writes a connection, never imports other ockamhub
// packages, and takes every key it uses from its Config or from the handshake
// itself, so fixed-key test vectors are reproducible.
//
// The wire behaviour is specified in protocol.md §10 (§10.1 suite, §10.2 key
// assignment, §10.5 data messages) and its vectors in §11.9.
//
// The suite is standard Noise (revision 34): X25519 with clamping, AES-256-GCM
// with a 16-byte tag, SHA-256, HKDF with salt = ck and empty info. The protocol
// name "Noise_XX_25519_AESGCM_SHA256" is 28 bytes, so it is zero-padded to 32
// and becomes both the initial h and ck. Ockam uses an empty prologue and empty
// handshake payloads, giving messages of 32, 96 and 64 bytes.
//
// Protocol flow:
//
//	initiator                                           responder
//	NewHandshake(Initiator: true)                       NewHandshake(Initiator: false)
//	WriteMessage  M1  -> e                        --->  ReadMessage
//	              e.pub(32) ‖ payload
//	ReadMessage   M2  <- e, ee, s, es             <---  WriteMessage
//	              e.pub(32) ‖ AEAD(s.pub)(48) ‖ AEAD(payload)(len+16)
//	WriteMessage  M3  -> s, se                    --->  ReadMessage
//	              AEAD(s.pub)(48) ‖ AEAD(payload)(len+16)
//	Complete() == true                                  Complete() == true
//	Split() -> send = k2, recv = k1                     Split() -> send = k1, recv = k2
//	Encrypt(n, inner) -> ct ‖ tag                 --->  Decrypt(n, ct ‖ tag)
//	Decrypt(n, ct ‖ tag)                          <---  Encrypt(n, inner) -> ct ‖ tag
//
// Ockam deviates from the Noise specification in two places, both on the
// transport side; the handshake itself is standard and interoperates with any
// Noise implementation (the tests check it against github.com/flynn/noise):
//
//  1. Reversed Split keys (protocol.md §10.2). Split derives k1 ‖ k2 as in
//     Noise §5.2, but Ockam's initiator encrypts with k2 and decrypts with k1,
//     and the responder encrypts with k1 and decrypts with k2. Noise says the
//     initiator sends with k1. [HandshakeState.Split] follows Ockam, so a Go
//     peer and a 2021 Rust or Elixir peer agree on the key of each direction.
//
//  2. An explicit u16 nonce carried on the wire (protocol.md §10.5). The
//     AES-GCM nonce of a data message is 00×10 ‖ u16 big-endian counter
//     (equal to Noise's 00×4 ‖ u64 big-endian for counters below 65536), and
//     the sender writes the same two counter bytes in front of the ciphertext,
//     so the receiver takes the nonce from the message instead of counting.
//     Data messages use empty associated data, as in Rust (the June 2021
//     Elixir code used h, §10.7). A Rust sender refuses n == [MaxNonce] and
//     never rekeys. [CipherState] therefore takes the nonce as an argument; counting,
//     the two-byte prefix and any replay policy belong to package securechannel.
//
// Go 1.26's crypto/ecdh ignores the random source passed to GenerateKey, so
// deterministic keys are injected as private-key bytes through [NewKeyPair]
// and [Config].
package noise
