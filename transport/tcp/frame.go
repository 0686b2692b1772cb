package tcp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/ockamhub/ockamhub/routing"
)

// MaxFrameSize is the largest frame body the u16 length prefix can carry.
const MaxFrameSize = 65535

// FrameHeaderSize is the size of the length prefix.
const FrameHeaderSize = 2 // u16 big-endian body length

// AppendFrame appends m as one frame (length prefix ‖ body) to b. It fails
// with ErrFrameTooLarge, leaving b unchanged, when the body would exceed max
// bytes (max ≤ MaxFrameSize; 0 means MaxFrameSize): nothing is truncated.
func AppendFrame(b []byte, m *routing.TransportMessage, max int) ([]byte, error) {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	n := m.EncodedLen()
	if n > max {
		return b, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b, err := m.AppendBinary(b)
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// ReadFrame reads one frame from r and returns its body in a new slice. It
// returns ErrEmptyFrame for a zero length, ErrFrameTooLarge for a length above
// max (0 means MaxFrameSize), io.ErrUnexpectedEOF for a truncated frame, and
// io.EOF at a clean end of stream.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	if max <= 0 || max > MaxFrameSize {
		max = MaxFrameSize
	}
	hdr, err := r.Peek(FrameHeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr))
	r.Discard(FrameHeaderSize)
	switch {
	case n == 0:
		return nil, ErrEmptyFrame
	case n > max:
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// heartbeatBody is the body of the heartbeat Rust Ockam sends from December
// 2021 (frame 00 04 01 00 00 00): version 1, empty onward and return
// routes, empty payload. It routes nowhere; receivers drop it.
var heartbeatBody = [...]byte{0x01, 0x00, 0x00, 0x00}

// isHeartbeat reports whether body is a heartbeat.
func isHeartbeat(body []byte) bool { return string(body) == string(heartbeatBody[:]) }
