package bare_test

import (
	"fmt"

	"github.com/ockamhub/ockamhub/bare"
)

// CreateResponderChannel is variant 0 of SecureChannelListenerMessage.
type CreateResponderChannel struct {
	Payload []byte // Noise XX message 1
}

// SecureChannelListenerMessage mirrors the Rust enum of ockam_channel (April
// 2021, protocol.md §10.4):
//
//	enum SecureChannelListenerMessage {
//	    CreateResponderChannel { payload: Vec<u8> },
//	}
//
// A BARE union, like a serde_bare enum, is the uint variant index followed by
// the variant's fields.
type SecureChannelListenerMessage struct {
	Variant any // CreateResponderChannel, the only variant
}

// MarshalBARE appends the variant index, then the variant.
func (m SecureChannelListenerMessage) MarshalBARE(b []byte) ([]byte, error) {
	switch v := m.Variant.(type) {
	case CreateResponderChannel:
		return bare.AppendMarshal(bare.AppendUint(b, 0), v)
	}
	return b, fmt.Errorf("SecureChannelListenerMessage: unknown variant %T", m.Variant)
}

// UnmarshalBARE reads the variant index, then the variant it names.
func (m *SecureChannelListenerMessage) UnmarshalBARE(r *bare.Reader) error {
	i, err := r.Uint("variant")
	if err != nil {
		return err
	}
	switch i {
	case 0:
		var v CreateResponderChannel
		if err := r.Unmarshal(&v); err != nil {
			return err
		}
		m.Variant = v
		return nil
	}
	// Unmarshal wraps this in a *DecodeError at the offset of the union.
	return fmt.Errorf("SecureChannelListenerMessage: variant %d: %w", i, bare.ErrInvalid)
}

// A Rust enum, here the listener message that carries Noise message 1, as a
// Go type with MarshalBARE and UnmarshalBARE.
func Example_union() {
	msg := SecureChannelListenerMessage{Variant: CreateResponderChannel{Payload: []byte{0xca, 0xfe}}}
	b, err := bare.Marshal(msg)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", b)

	var got SecureChannelListenerMessage
	if err := bare.Unmarshal(b, &got); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", got.Variant)

	err = bare.Unmarshal([]byte{0x07}, &got)
	fmt.Println(err)
	// Output:
	// 00 02 ca fe
	// {Payload:[202 254]}
	// bare: decoding bare_test.SecureChannelListenerMessage at offset 0: SecureChannelListenerMessage: variant 7: bare: invalid value
}
