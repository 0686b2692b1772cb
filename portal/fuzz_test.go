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
	// The early-data forms: a Ping with early bytes (and with none, and
	// cut short), a Pong that took some.
	f.Add(portal.AppendPingEarly(nil, 2<<20, []byte("GET / HTTP/1.0\r\n\r\n")))
	f.Add(portal.AppendPingEarly(nil, 0, nil))
	f.Add(portal.AppendPingEarly(nil, 1, []byte("cut"))[:8])
	f.Add(portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 2 << 20, Features: portal.FeatureEarlyData, Early: 18}))
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
				if m.HasWritten {
					re = portal.AppendCreditWritten(nil, m.Offset, m.Written)
				}
			case portal.TagPing:
				if !m.Early {
					continue
				}
				if len(m.Data) > portal.MaxEarly {
					t.Fatalf("% x: %d early bytes, more than MaxEarly", b, len(m.Data))
				}
				re = portal.AppendPingEarly(nil, m.Offset, m.Data)
			case portal.TagPong:
				if m.Ext == nil {
					continue
				}
				re = portal.AppendPong(nil, m.Ext)
			default:
				continue
			}
			back, err := portal.DecodeG3(re, ext)
			if err != nil || back.Tag != m.Tag || back.Offset != m.Offset || !bytes.Equal(back.Data, m.Data) || back.Early != m.Early ||
				back.HasWritten != m.HasWritten || back.Written != m.Written ||
				(back.Ext == nil) != (m.Ext == nil) || (m.Ext != nil && *back.Ext != *m.Ext) {
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
