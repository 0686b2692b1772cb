package bare_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/bare"
)

var benchSizes = []int{21, 1024, 65536}

func BenchmarkMarshalString(b *testing.B) {
	for _, n := range benchSizes {
		s := strings.Repeat("a", n)
		b.Run("size="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := bare.Marshal(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalString(b *testing.B) {
	for _, n := range benchSizes {
		in, err := bare.Marshal(strings.Repeat("a", n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run("size="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			var s string
			for b.Loop() {
				if err := bare.Unmarshal(in, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchMsg is shaped like the secure-channel listener message and a routing
// header: a few small fields, a payload, an optional, a short list.
type benchMsg struct {
	Version uint8
	Onward  []address
	Return  []address
	Payload []byte
	Name    string
	Count   uint
	Opt     *address
}

func newBenchMsg(payload int) benchMsg {
	return benchMsg{
		Version: 1,
		Onward:  []address{{Type: 1, Value: []byte("127.0.0.1:4000")}, {Type: 0, Value: []byte("echo_service")}},
		Return:  []address{{Type: 0, Value: []byte("app")}},
		Payload: make([]byte, payload),
		Name:    "Hello you over there!",
		Count:   300,
		Opt:     &address{Type: 0, Value: []byte("cb")},
	}
}

func BenchmarkMarshalStruct(b *testing.B) {
	for _, n := range []int{32, 1024} {
		m := newBenchMsg(n)
		size, _ := bare.Marshal(m)
		b.Run("payload="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(size)))
			for b.Loop() {
				if _, err := bare.Marshal(&m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("append/payload="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(size)))
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				var err error
				if buf, err = bare.AppendMarshal(buf[:0], &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalStruct(b *testing.B) {
	for _, n := range []int{32, 1024} {
		in, err := bare.Marshal(newBenchMsg(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run("payload="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				var m benchMsg
				if err := bare.Unmarshal(in, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
