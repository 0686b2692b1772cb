package noise

import (
	"fmt"
	"testing"
)

// BenchmarkHandshake measures a whole XX handshake, both sides, including
// the random ephemeral keys NewHandshake makes and both Splits.
func BenchmarkHandshake(b *testing.B) {
	iStatic, err := GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	rStatic, err := GenerateKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var buf, payload []byte
	for b.Loop() {
		ini, err := NewHandshake(Config{Initiator: true, StaticKeyPair: iStatic})
		if err != nil {
			b.Fatal(err)
		}
		res, err := NewHandshake(Config{StaticKeyPair: rStatic})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range [][2]*HandshakeState{{ini, res}, {res, ini}, {ini, res}} {
			if buf, err = p[0].WriteMessage(buf[:0], nil); err != nil {
				b.Fatal(err)
			}
			if payload, err = p[1].ReadMessage(payload[:0], buf); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := ini.Split(); err != nil {
			b.Fatal(err)
		}
		if _, _, err := res.Split(); err != nil {
			b.Fatal(err)
		}
	}
}

var benchSizes = []int{64, 1024, 16384}

func BenchmarkEncrypt(b *testing.B) {
	cs, err := NewCipherState(Key{1})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			pt := make([]byte, size)
			out := make([]byte, 0, size+Overhead)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			n := uint16(0)
			for b.Loop() {
				out = cs.Encrypt(out[:0], n, pt)
				n++
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	cs, err := NewCipherState(Key{1})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			ct := cs.Encrypt(nil, 5, make([]byte, size))
			out := make([]byte, 0, size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if out, err = cs.Decrypt(out[:0], 5, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
