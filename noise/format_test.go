package noise

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestKeyPairPrintsNoSecret: no formatting of a key pair, alone or inside a
// struct, by fmt, slog or encoders, shows its private key (issue 13).
func TestKeyPairPrintsNoSecret(t *testing.T) {
	kp, err := NewKeyPair(Key{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28})
	if err != nil {
		t.Fatal(err)
	}
	secretHex := hex.EncodeToString(kp.Private[:])
	// Decimal forms of the first private bytes, as %v of a [32]byte prints.
	secretDec := fmt.Sprint(kp.Private[:4])
	secretDec = strings.Trim(secretDec, "[]")
	publicHex := hex.EncodeToString(kp.Public[:])
	type holder struct {
		Name string
		KP   KeyPair
		Ptr  *KeyPair
	}
	h := holder{"x", kp, &kp}

	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "kp", kp)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "kp", kp, "holder", h)
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"slog": logged.String(), "json": string(js)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outputs[verb] = fmt.Sprintf(verb, kp)
		outputs[verb+" pointer"] = fmt.Sprintf(verb, &kp)
		outputs[verb+" struct"] = fmt.Sprintf(verb, h)
	}
	for what, out := range outputs {
		if strings.Contains(strings.ToLower(out), secretHex) || strings.Contains(out, secretDec) {
			t.Errorf("%s prints the private key: %s", what, out)
		}
	}
	for _, what := range []string{"%v", "%s", "slog"} {
		if !strings.Contains(outputs[what], publicHex) {
			t.Errorf("%s does not show the public key: %s", what, outputs[what])
		}
	}

	cs, err := NewCipherState(Key{0xde, 0xad, 0xbe, 0xef})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x"} {
		if out := fmt.Sprintf(verb, cs); strings.Contains(out, "deadbeef") || strings.Contains(out, "222 173 190 239") {
			t.Errorf("%s of a CipherState prints its key: %s", verb, out)
		}
	}
}

// TestDestroy: Destroy clears the handshake's secrets and leaves a state
// that refuses every further step.
func TestDestroy(t *testing.T) {
	ini, res := newPair(t, nil, nil)
	m1, _ := ini.WriteMessage(nil, nil)
	if _, err := res.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, _ := res.WriteMessage(nil, nil)
	if _, err := ini.ReadMessage(nil, m2); err != nil {
		t.Fatal(err)
	}
	m3, _ := ini.WriteMessage(nil, nil)
	if _, _, err := ini.Split(); err != nil {
		t.Fatal(err)
	}
	ini.Destroy()
	if ini.ss.ck != ([32]byte{}) || ini.ss.k != (Key{}) || ini.s != nil || ini.e != nil || ini.ss.aead != nil {
		t.Error("Destroy left secrets")
	}
	if _, _, err := ini.Split(); err == nil {
		t.Error("Split after Destroy succeeded")
	}
	res.Destroy()
	if _, err := res.ReadMessage(nil, m3); err == nil {
		t.Error("ReadMessage after Destroy succeeded")
	}
	var kp KeyPair
	kp.Private[0] = 1
	kp.Destroy()
	if kp.Private != (Key{}) {
		t.Error("KeyPair.Destroy left the private key")
	}
}

// TestHandshakeStatePrintsNoSecret: a handshake in progress holds the
// chaining key and the handshake cipher key; printing the state (by
// pointer or by value, with any verb, or through slog) showed both.
func TestHandshakeStatePrintsNoSecret(t *testing.T) {
	ini, res := newPair(t, nil, nil)
	m1, _ := ini.WriteMessage(nil, nil)
	if _, err := res.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, _ := res.WriteMessage(nil, nil)
	if _, err := ini.ReadMessage(nil, m2); err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"chaining key": ini.ss.ck[:], "handshake key": ini.ss.k[:]}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("hs", "hs", ini)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("hs", "hs", *ini)
	outputs := map[string]string{"slog": logged.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		outputs[verb+" pointer"] = fmt.Sprintf(verb, ini)
		outputs[verb+" value"] = fmt.Sprintf(verb, *ini)
	}
	for what, out := range outputs {
		for name, secret := range secrets {
			dec := strings.Trim(fmt.Sprint(secret[:4]), "[]")
			if strings.Contains(strings.ToLower(out), hex.EncodeToString(secret)) || strings.Contains(out, dec) {
				t.Errorf("%s of a HandshakeState prints its %s: %s", what, name, out)
			}
		}
	}
	cs, err := NewCipherState(Key{0xde, 0xad, 0xbe, 0xef})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%x"} {
		if out := fmt.Sprintf(verb, *cs); strings.Contains(out, "deadbeef") || strings.Contains(out, "222 173 190 239") {
			t.Errorf("%s of a CipherState value prints its key: %s", verb, out)
		}
	}
}
