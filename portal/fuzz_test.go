package portal_test

import (
	"bytes"
	"testing"

	"github.com/ockamhub/ockamhub/portal"
)

func seeds(f *testing.F) {
	for _, name := range []string{"portal-messages.hex", "portal-extension.hex"} {
		vf := load(f, name)
		for _, n := range vf.Names {
			f.Add(vf.Segments[n])
		}
	}
}

// FuzzDecodeG3 checks that no input panics, and that what decodes
// re-encodes to a prefix-compatible message.
func FuzzDecodeG3(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, ext := range []bool{false, true} {
			m, err := portal.DecodeG3(b, ext)
			if err != nil {
				continue
			}
			var re []byte
			switch m.Tag {
			case portal.TagPayload:
				re = portal.AppendPayload(nil, m.Data)
			case portal.TagData:
				re = portal.AppendData(nil, m.Offset, m.Data)
			case portal.TagCredit:
				re = portal.AppendCredit(nil, m.Offset)
			default:
				continue
			}
			back, err := portal.DecodeG3(re, ext)
			if err != nil || back.Tag != m.Tag || back.Offset != m.Offset || !bytes.Equal(back.Data, m.Data) {
				t.Fatalf("% x: round trip %+v -> % x -> %+v %v", b, m, re, back, err)
			}
		}
	})
}

// FuzzDecodeG2Data checks that no input panics and that data round-trips.
func FuzzDecodeG2Data(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := portal.DecodeG2Data(b)
		if err != nil {
			return
		}
		back, err := portal.DecodeG2Data(portal.AppendG2Data(nil, d))
		if err != nil || !bytes.Equal(back, d) {
			t.Fatalf("% x: round trip %v", b, err)
		}
	})
}
