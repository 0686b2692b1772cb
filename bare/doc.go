// Package bare implements the subset of BARE (Binary Application Record
// Encoding) that the Ockam v1 wire protocol and its applications use.
//
// It has two layers:
//
//   - Primitives: Append* functions that write one value to a byte slice, and
//     a bounds-checked [Reader] cursor that reads them back. The Ockam routing
//     codec (package routing) is written with these.
//   - Values: [Marshal] and [Unmarshal] map Go values to BARE the way the 2021
//     Rust nodes' serde_bare did, so that Go and Rust workers exchange the
//     same bytes (a Go string encodes exactly like a Rust String).
//
// Encoding rules (protocol.md §4):
//
//	uint           LEB128, 7 bits per byte, least significant group first
//	int            zig-zag, then uint
//	u8..u64        fixed width, little endian
//	i8..i64        fixed width, little endian, two's complement
//	bool           one byte, 0x00 or 0x01
//	data, string   uint length ‖ bytes
//	[N]T           N values, no length (fixed-length array)
//	[]T            uint count ‖ values
//	optional<T>    0x00, or 0x01 ‖ T
//	map[K]V        uint count ‖ (K ‖ V)...
//	struct         fields in declaration order, no tags or lengths
//	union / enum   uint variant index ‖ the variant's value
//
// The encoder always emits minimal LEB128. The decoder accepts non-minimal
// LEB128 (as serde_bare and Erlang's bare do) but rejects values that overflow
// 64 bits. The decoder never allocates more than the remaining input can
// justify: a length or count larger than the bytes left is an error before any
// allocation is made.
//
// Package bare knows nothing of Ockam.
package bare
