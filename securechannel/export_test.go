package securechannel

import "github.com/ockamhub/ockamhub/noise"

// Test hooks for the external tests. Fixed ephemeral keys exist only to
// reproduce the vectors of protocol.md §11.9; they are not part of the API
// because reusing an ephemeral key destroys forward secrecy.

// SetEphemeral makes Create with cfg use kp as the ephemeral key pair.
func SetEphemeral(cfg *Config, kp noise.KeyPair) { cfg.ephemeral = &kp }

// SetListenerEphemeral makes every responder of a listener started with cfg
// use kp as its ephemeral key pair.
func SetListenerEphemeral(cfg *ListenerConfig, kp noise.KeyPair) { cfg.ephemeral = &kp }
