package bare

import (
	"encoding/binary"
	"math"
)

// AppendUint appends v as a BARE uint (minimal LEB128).
func AppendUint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendInt appends v as a BARE int (zig-zag LEB128).
func AppendInt(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// UintLen returns the number of bytes AppendUint writes for v.
func UintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// AppendU8 appends one raw byte.
func AppendU8(b []byte, v uint8) []byte { return append(b, v) }

// AppendU16 appends v as a little-endian u16.
func AppendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// AppendU32 appends v as a little-endian u32.
func AppendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// AppendU64 appends v as a little-endian u64.
func AppendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendF32 appends v as a little-endian IEEE 754 f32.
func AppendF32(b []byte, v float32) []byte { return AppendU32(b, math.Float32bits(v)) }

// AppendF64 appends v as a little-endian IEEE 754 f64.
func AppendF64(b []byte, v float64) []byte { return AppendU64(b, math.Float64bits(v)) }

// AppendBool appends v as one byte, 0x01 for true.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendData appends d as BARE data: uint length, then the bytes.
// A Rust Vec<u8> encodes the same way.
func AppendData(b []byte, d []byte) []byte {
	b = AppendUint(b, uint64(len(d)))
	return append(b, d...)
}

// AppendString appends s as a BARE string: uint length, then the UTF-8 bytes.
// It does not check that s is valid UTF-8; [Marshal] does.
func AppendString(b []byte, s string) []byte {
	b = AppendUint(b, uint64(len(s)))
	return append(b, s...)
}
