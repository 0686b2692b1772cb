package loadgen

import (
	"bytes"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func TestParseBodyAndReply(t *testing.T) {
	tests := []struct {
		name        string
		onward, ret routing.Route
		size        int
	}{
		{"echo", routing.Route{echoService}, routing.Route{localName('c', 1)}, 100},
		{"forwarded", routing.Route{localName('r', 2)}, routing.Route{routing.LocalAddress("1a2b3c4d"), localName('s', 2)}, 8},
		{"tcp hop", routing.Route{routing.TCPAddress("127.0.0.1:4000"), echoService}, routing.Route{localName('c', 3)}, 300},
		{"large", routing.Route{localName('r', 4)}, routing.Route{localName('s', 4)}, MaxSize(Bulk)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFrame(tt.onward, tt.ret, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			b := f.append(nil, 0x0102030405060708)
			body := b[tcp.FrameHeaderSize:]
			ret, payload, err := parseBody(body)
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := routing.DecodeMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(payload, want.Payload) {
				t.Errorf("payload differs from DecodeMessage's")
			}
			if ts, ok := stamp(payload); !ok || ts != 0x0102030405060708 {
				t.Errorf("stamp = %x, %v; want 0102030405060708", ts, ok)
			}
			if !bytes.Equal(ret, encodeRoute(tt.ret)) {
				t.Errorf("return route bytes %x, want %x", ret, encodeRoute(tt.ret))
			}
			from := encodeRoute(routing.Route{localName('r', 9)})
			reply := appendReply(nil, ret, from, payload)
			got, _, err := routing.DecodeMessage(reply[tcp.FrameHeaderSize:])
			if err != nil {
				t.Fatal(err)
			}
			if !got.Onward.Equal(tt.ret) || !got.Return.Equal(routing.Route{localName('r', 9)}) || !bytes.Equal(got.Payload, payload) {
				t.Errorf("reply = %v / %v, want onward %v, return [r0000009], same payload", got.Onward, got.Return, tt.ret)
			}
			if n := int(reply[0])<<8 | int(reply[1]); n != len(reply)-tcp.FrameHeaderSize {
				t.Errorf("reply frame length %d, body %d bytes", n, len(reply)-tcp.FrameHeaderSize)
			}
		})
	}
}

func TestParseBodyRejectsTruncated(t *testing.T) {
	f, err := newFrame(routing.Route{echoService}, routing.Route{localName('c', 1)}, 20)
	if err != nil {
		t.Fatal(err)
	}
	body := f.b[tcp.FrameHeaderSize:]
	for n := range len(body) {
		if _, _, err := parseBody(body[:n]); err == nil {
			t.Errorf("parseBody of %d of %d bytes: no error", n, len(body))
		}
	}
}

func TestMaxSizeFits(t *testing.T) {
	// The largest hub delivery of Forward and Bulk must fit in a frame.
	m := routing.TransportMessage{
		Onward:  routing.Route{localName('r', 1)},
		Return:  routing.Route{routing.LocalAddress("00000000"), localName('s', 1)},
		Payload: make([]byte, MaxSize(Forward)),
	}
	if n := m.EncodedLen(); n > tcp.MaxFrameSize {
		t.Errorf("largest message is %d bytes, more than a frame", n)
	}
	if _, err := newFrame(routing.Route{echoService}, routing.Route{localName('c', 1)}, MaxSize(Echo)); err != nil {
		t.Error(err)
	}
}
