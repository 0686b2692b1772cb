package noise_test

import (
	"fmt"
	"log"

	"github.com/ockamhub/ockamhub/noise"
)

// Example runs an Ockam-style handshake (empty prologue and payloads) between
// two in-memory peers and exchanges one data message each way. A secure
// channel would carry each message in a TransportMessage instead.
func Example() {
	newSide := func(initiator bool) *noise.HandshakeState {
		static, err := noise.GenerateKeyPair()
		if err != nil {
			log.Fatal(err)
		}
		hs, err := noise.NewHandshake(noise.Config{Initiator: initiator, StaticKeyPair: static})
		if err != nil {
			log.Fatal(err)
		}
		return hs
	}
	initiator, responder := newSide(true), newSide(false)

	for i, step := range [][2]*noise.HandshakeState{
		{initiator, responder}, // M1 -> e
		{responder, initiator}, // M2 <- e, ee, s, es
		{initiator, responder}, // M3 -> s, se
	} {
		msg, err := step[0].WriteMessage(nil, nil)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := step[1].ReadMessage(nil, msg); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("M%d: %d bytes\n", i+1, len(msg))
	}
	fmt.Println("same hash:", initiator.HandshakeHash() == responder.HandshakeHash())

	iSend, iRecv, err := initiator.Split()
	if err != nil {
		log.Fatal(err)
	}
	rSend, rRecv, err := responder.Split()
	if err != nil {
		log.Fatal(err)
	}
	// The caller owns the u16 counter and sends it in front of the ciphertext.
	ct := iSend.Encrypt(nil, 0, []byte("ping"))
	pt, err := rRecv.Decrypt(nil, 0, ct)
	fmt.Printf("%s %v\n", pt, err)
	ct = rSend.Encrypt(nil, 0, []byte("pong"))
	pt, err = iRecv.Decrypt(nil, 0, ct)
	fmt.Printf("%s %v\n", pt, err)
	// Output:
	// M1: 32 bytes
	// M2: 96 bytes
	// M3: 64 bytes
	// same hash: true
	// ping <nil>
	// pong <nil>
}
