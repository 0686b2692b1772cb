package portal

import (
	"bytes"
	"testing"
)

// FuzzParseDataHead: whenever parseDataHead accepts the first bytes of a
// portal message (the head a transport splices after), DecodeG3 decodes
// the whole message to the same tag and offset, with the data exactly
// the bytes after the head: a spliced message is never another message
// than the usual path would have delivered.
func FuzzParseDataHead(f *testing.F) {
	data := bytes.Repeat([]byte{7}, 300)
	f.Add(AppendPayload(nil, data), 8, false)
	f.Add(AppendData(nil, 1<<40, data), 12, true)
	f.Add(AppendData(nil, 5, data), 3, false)
	f.Add(append(AppendPayload(nil, data), 1, 2, 3), 20, false)             // trailing bytes
	f.Add([]byte{0x83, 0x00, 0x05, 1, 2, 3, 4, 5}, 8, false)                // a non-canonical tag
	f.Add([]byte{0x05, 0x80, 0x80, 0x00, 0x02, 1, 2}, 7, true)              // non-canonical offset
	f.Add(AppendData(nil, 0, data)[:200], 200, true)                        // cut short
	f.Add([]byte{byte(TagPayload), 0xff, 0xff, 0xff, 0xff, 0x0f}, 6, false) // a huge length
	f.Fuzz(func(t *testing.T, p []byte, k int, ext bool) {
		k = min(max(k, 0), len(p))
		h, ok := parseDataHead(p[:k], len(p), ext)
		if !ok {
			return
		}
		m, err := DecodeG3(p, ext)
		if err != nil {
			t.Fatalf("parseDataHead accepted % x, DecodeG3 refused it: %v", p[:min(len(p), 16)], err)
		}
		if m.Tag != h.tag || (m.Tag == TagData && m.Offset != h.off) || h.skip > k || !bytes.Equal(m.Data, p[h.skip:]) {
			t.Fatalf("parseDataHead %+v, DecodeG3 %v %d %d bytes", h, m.Tag, m.Offset, len(m.Data))
		}
	})
}
