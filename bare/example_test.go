package bare_test

import (
	"errors"
	"fmt"

	"github.com/ockamhub/ockamhub/bare"
)

func ExampleMarshal() {
	// Rust: struct CreateResponderChannelMessage { payload: Vec<u8>, callback_address: Option<Address> }
	type Address struct {
		Type  uint8
		Value []byte
	}
	type CreateResponderChannelMessage struct {
		Payload         []byte
		CallbackAddress *Address // Option<Address>
	}
	b, err := bare.Marshal(CreateResponderChannelMessage{
		Payload:         []byte{0xca, 0xfe},
		CallbackAddress: &Address{Type: 0, Value: []byte("cb")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", b)

	s, _ := bare.Marshal("Hello you over there!")
	fmt.Printf("% x\n", s[:4])
	// Output:
	// 02 ca fe 01 00 02 63 62
	// 15 48 65 6c
}

func ExampleUnmarshal() {
	var addrs []struct {
		Type  uint8
		Value string
	}
	err := bare.Unmarshal([]byte{0x01, 0x00, 0x03, 'a', 'p', 'p'}, &addrs)
	fmt.Println(addrs, err)

	// Input that claims more than it holds fails before allocating.
	err = bare.Unmarshal([]byte{0x80, 0x80, 0x80, 0x80, 0x01, 0x00}, &addrs)
	fmt.Println(errors.Is(err, bare.ErrLength), err)
	// Output:
	// [{0 app}] <nil>
	// true bare: decoding []struct { Type uint8; Value string } at offset 0: length exceeds input
}
