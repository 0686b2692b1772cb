package tcp_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func TestAppendFrameVectors(t *testing.T) {
	for _, name := range []string{"frame-echo-request", "frame-echo-reply", "multihop-1-initiator-to-middle", "multihop-2-middle-to-responder"} {
		t.Run(name, func(t *testing.T) {
			want := vector(t, name)
			m, _, err := routing.DecodeMessage(want[2:])
			if err != nil {
				t.Fatal(err)
			}
			got, err := tcp.AppendFrame(nil, &m, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("frame\n%x\nwant\n%x", got, want)
			}
			body, err := tcp.ReadFrame(bufio.NewReader(bytes.NewReader(want)), 0)
			if err != nil || !bytes.Equal(body, want[2:]) {
				t.Fatalf("ReadFrame = %x, %v", body, err)
			}
		})
	}
}

func TestAppendFrameTooLarge(t *testing.T) {
	m := routing.TransportMessage{Onward: routing.MustParseRoute("a"), Payload: make([]byte, 65535)}
	prefix := []byte("keep")
	out, err := tcp.AppendFrame(prefix, &m, 0)
	if !errors.Is(err, tcp.ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if !bytes.Equal(out, prefix) {
		t.Fatal("AppendFrame wrote part of a refused frame")
	}
	m.Payload = make([]byte, 100)
	if _, err := tcp.AppendFrame(nil, &m, 50); !errors.Is(err, tcp.ErrFrameTooLarge) {
		t.Fatalf("limit 50: err = %v", err)
	}
	// The largest body that fits.
	m.Payload = make([]byte, 65535-1-1-3-1-3) // version, count, "a", count, length
	if f, err := tcp.AppendFrame(nil, &m, 0); err != nil || len(f) != 65537 {
		t.Fatalf("max frame: %d bytes, %v", len(f), err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		err  error
	}{
		{"clean eof", nil, 0, io.EOF},
		{"half header", []byte{0}, 0, io.ErrUnexpectedEOF},
		{"empty frame", []byte{0, 0}, 0, tcp.ErrEmptyFrame},
		{"truncated body", []byte{0, 5, 1, 2}, 0, io.ErrUnexpectedEOF},
		{"over limit", []byte{0, 200, 1}, 100, tcp.ErrFrameTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tcp.ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), tc.max)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	for _, name := range []string{"frame-echo-request", "capture-echo-0.4.0-client-to-server", "multihop-2-middle-to-responder"} {
		b, err := vectorBytes(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, b...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for {
			body, err := tcp.ReadFrame(r, 0)
			if err != nil {
				return
			}
			if len(body) == 0 || len(body) > tcp.MaxFrameSize {
				t.Fatalf("body of %d bytes", len(body))
			}
			if m, _, err := routing.DecodeMessage(body); err == nil {
				if _, err := tcp.AppendFrame(nil, &m, 0); err != nil && !errors.Is(err, tcp.ErrFrameTooLarge) {
					t.Fatalf("re-encoding a decoded message: %v", err)
				}
			}
		}
	})
}
