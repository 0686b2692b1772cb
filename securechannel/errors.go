package securechannel

import "errors"

// Sentinel errors, compared with errors.Is. ErrListenerMessage,
// ErrHandshakeMessage, ErrDataMessage and ErrReplay say why a message from
// the network was dropped (counted in Stats, and logged at debug level); no
// call returns them, since a bad message never ends a channel.
var (
	// ErrClosed is returned by Create when the channel is closed (by Close,
	// or because its node closed) before the handshake completes.
	ErrClosed = errors.New("securechannel: closed")

	// ErrNonceExhausted means a channel end has sent its 65535 messages: the
	// u16 counter of protocol.md §10.5 would reach MaxNonce, and the 2021
	// protocol has no rekeying. Further messages are refused, never sent
	// with a reused or wrapped nonce. Create a new channel.
	ErrNonceExhausted = errors.New("securechannel: message counter exhausted; create a new channel")

	// ErrNotReady means a plaintext message reached a channel end before its
	// handshake completed.
	ErrNotReady = errors.New("securechannel: handshake not complete")

	// ErrUnauthorizedPeer means the peer's static key was refused: it is not
	// the key pinned in Config.ExpectedPeerStatic, or
	// ListenerConfig.Authorized rejected it.
	ErrUnauthorizedPeer = errors.New("securechannel: peer static key not authorized")

	// ErrListenerMessage means the first handshake message, sent to a
	// listener, is neither listener-message form of protocol.md §10.4 with
	// a 32-byte M1.
	ErrListenerMessage = errors.New("securechannel: malformed listener message")

	// ErrHandshakeMessage means a handshake message (M2 or M3) is not a BARE
	// Vec<u8> filling the whole payload.
	ErrHandshakeMessage = errors.New("securechannel: malformed handshake message")

	// ErrDataMessage means an encrypted data message is not a BARE Vec<u8>
	// holding a 2-byte counter and at least an AES-GCM tag, filling the
	// whole payload (protocol.md §10.5).
	ErrDataMessage = errors.New("securechannel: malformed data message")

	// ErrReplay means a data message's counter was already accepted, or is
	// too far behind the newest one for the replay window to tell.
	ErrReplay = errors.New("securechannel: replayed or too old data message")

	// ErrKeyPermissions means a key file may be read or written by users
	// other than its owner (mode & 0o077 != 0), so LoadOrCreateKey refuses
	// to use it.
	ErrKeyPermissions = errors.New("securechannel: key file is accessible by group or others")

	// ErrIdentity means a text identity (ParseIdentity, an allow-list or a
	// known-peers line) is not 64 hex digits of a usable public key.
	ErrIdentity = errors.New("securechannel: malformed identity")

	// ErrPeerChanged means the responder presented another identity than
	// the one a KnownPeers file recorded for the same route. The error
	// (a *PeerChangedError) says both identities and how to accept the new
	// one deliberately.
	ErrPeerChanged = errors.New("securechannel: peer identity changed")

	// ErrNoPeerPolicy means Create was called without saying which
	// responder to accept (Config.ExpectedPeerStatic, Config.VerifyPeer or
	// Config.InsecureAcceptAnyPeer), or Listen without saying which
	// initiators to admit (ListenerConfig.Authorized or
	// ListenerConfig.AcceptAnyInitiator). No API hands out an
	// unauthenticated channel unless the caller asks for one.
	ErrNoPeerPolicy = errors.New("securechannel: no peer policy: pin the peer's identity, verify it, or explicitly accept any peer")

	// ErrKeyFile means a key file does not hold one hex-encoded 32-byte
	// X25519 private key.
	ErrKeyFile = errors.New("securechannel: malformed key file")
)
