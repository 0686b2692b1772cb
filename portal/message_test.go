package portal_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ockamhub/ockamhub/internal/vectorfile"
	"github.com/ockamhub/ockamhub/portal"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

func load(t testing.TB, name string) *vectorfile.File {
	t.Helper()
	f, err := vectorfile.Load("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestEncodeVectors(t *testing.T) {
	msgs := load(t, "portal-messages.hex").Segments
	ext := load(t, "portal-extension.hex").Segments
	ab := bytes.Repeat([]byte{0xab}, 256)
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"g3-ping", portal.AppendPing(nil), msgs["g3-ping"]},
		{"g3-pong", portal.AppendPong(nil, nil), msgs["g3-pong"]},
		{"g3-disconnect", portal.AppendDisconnect(nil, -1), msgs["g3-disconnect"]},
		{"g3-payload-hello", portal.AppendPayload(nil, []byte("hello")), msgs["g3-payload-hello"]},
		{"g3-payload-empty", portal.AppendPayload(nil, nil), msgs["g3-payload-empty"]},
		{"g3-payload-256", portal.AppendPayload(nil, ab), msgs["g3-payload-256"]},
		{"g2-handshake", portal.G2Handshake, msgs["g2-handshake"]},
		{"g2-data-hello", portal.AppendG2Data(nil, []byte("hello")), msgs["g2-data-hello"]},
		{"g2-data-256", portal.AppendG2Data(nil, ab), msgs["g2-data-256"]},
		{"pong-offer", portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 512 << 10}), ext["pong-offer"]},
		{"credit", portal.AppendCredit(nil, 512<<10), ext["credit"]},
		{"data", portal.AppendData(nil, 5, []byte("hi")), ext["data"]},
		{"disconnect-total", portal.AppendDisconnect(nil, 7), ext["disconnect-total"]},
		{"abort", portal.AppendAbort(nil, 7), ext["abort"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) == 0 {
				t.Fatal("no vector")
			}
			if !bytes.Equal(tc.got, tc.want) {
				t.Errorf("got % x, want % x", tc.got, tc.want)
			}
		})
	}
}

func TestDecodeG3(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		ext  bool
		want portal.Message
		err  error
	}{
		{"ping", []byte{0}, false, portal.Message{Tag: portal.TagPing}, nil},
		{"ping non-canonical tag", []byte{0x80, 0x00}, false, portal.Message{Tag: portal.TagPing}, nil},
		{"disconnect trailing ignored", []byte{2, 0x78, 0x79}, false, portal.Message{Tag: portal.TagDisconnect}, nil},
		{"disconnect total", []byte{2, 7}, true, portal.Message{Tag: portal.TagDisconnect, Offset: 7, HasTotal: true}, nil},
		{"abort", []byte{2, 7, 1}, true, portal.Message{Tag: portal.TagDisconnect, Offset: 7, HasTotal: true, Abort: true}, nil},
		{"payload trailing ignored", []byte("\x03\x05helloEXTRA"), false, portal.Message{Tag: portal.TagPayload, Data: []byte("hello")}, nil},
		{"payload short", []byte("\x03\x05hel"), false, portal.Message{}, portal.ErrShort},
		{"empty", nil, false, portal.Message{}, portal.ErrShort},
		{"unknown tag", []byte{4, 0}, false, portal.Message{}, portal.ErrUnknownTag},
		{"tag 9", []byte{9}, true, portal.Message{}, portal.ErrUnknownTag},
		{"credit", []byte{4, 0x80, 0x80, 0x20}, true, portal.Message{Tag: portal.TagCredit, Offset: 512 << 10}, nil},
		{"credit short", []byte{4, 0x80}, true, portal.Message{}, portal.ErrShort},
		{"credit written", []byte{4, 0x80, 0x80, 0x20, 0x80, 0x40}, true, portal.Message{Tag: portal.TagCredit, Offset: 512 << 10, Written: 8192, HasWritten: true}, nil},
		{"credit written zero", portal.AppendCreditWritten(nil, 9, 0), true, portal.Message{Tag: portal.TagCredit, Offset: 9, HasWritten: true}, nil},
		{"credit trailing not a count", []byte{4, 9, 0x80}, true, portal.Message{Tag: portal.TagCredit, Offset: 9}, nil},
		{"data", []byte{5, 5, 2, 'h', 'i'}, true, portal.Message{Tag: portal.TagData, Offset: 5, Data: []byte("hi")}, nil},
		{"data short", []byte{5, 5, 3, 'h', 'i'}, true, portal.Message{}, portal.ErrShort},
		{"huge tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, true, portal.Message{}, portal.ErrUnknownTag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := portal.DecodeG3(tc.in, tc.ext)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if got.Tag != tc.want.Tag || got.Offset != tc.want.Offset || got.HasTotal != tc.want.HasTotal || got.Abort != tc.want.Abort || !bytes.Equal(got.Data, tc.want.Data) ||
				got.Written != tc.want.Written || got.HasWritten != tc.want.HasWritten {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// The offer is read from a Pong; anything else after a Pong is no offer.
	for _, tc := range []struct {
		in   []byte
		want *portal.Extension
	}{
		{[]byte{1}, nil},
		{[]byte{1, 'o', 'h', 1, 0x80, 0x80, 0x20}, &portal.Extension{Version: 1, Window: 512 << 10}},
		{[]byte{1, 'x', 'y', 1, 1}, nil},
		{[]byte{1, 'o', 'h', 0, 1}, nil},
		{[]byte{1, 'o', 'h', 1}, nil},
	} {
		m, err := portal.DecodeG3(tc.in, false)
		if err != nil || m.Tag != portal.TagPong {
			t.Fatalf("% x: %v %v", tc.in, m.Tag, err)
		}
		if (m.Ext == nil) != (tc.want == nil) || (m.Ext != nil && *m.Ext != *tc.want) {
			t.Errorf("% x: offer %+v, want %+v", tc.in, m.Ext, tc.want)
		}
	}
}

func TestDecodeG2(t *testing.T) {
	d, err := portal.DecodeG2Data([]byte("\x05helloXX"))
	if err != nil || string(d) != "hello" {
		t.Fatalf("got %q %v", d, err)
	}
	if _, err := portal.DecodeG2Data([]byte("\x05hel")); !errors.Is(err, portal.ErrShort) {
		t.Fatalf("short: %v", err)
	}
	if !portal.IsG2Handshake([]byte{0}) || !portal.IsG2Handshake([]byte{7}) || portal.IsG2Handshake([]byte{0, 0}) {
		t.Fatal("IsG2Handshake")
	}
}

// TestHubFrames pins the frames of portals.md §7.6 (a G3 portal through a
// hub forwarder) against the encoder of the routing and tcp packages with
// the portal messages of this one.
func TestHubFrames(t *testing.T) {
	f := load(t, "portal-g3-hub.hex").Segments
	I, O := routing.LocalAddress("0f1e2d3c4b5a69788796a5b4c3d2e1f0"), routing.LocalAddress("f0e1d2c3b4a5968778695a4b3c2d1e0f")
	HI, HO := routing.LocalAddress("TCP_H_1a2b3c4d5e6f7081"), routing.LocalAddress("TCP_H_9f8e7d6c5b4a3928")
	X, F := routing.LocalAddress("FWD_0123456789abcdef"), routing.LocalAddress("c0ffee00c0ffee00c0ffee00c0ffee00")
	hello := portal.AppendPayload(nil, []byte("hello"))
	for _, tc := range []struct {
		name        string
		onward, ret routing.Route
		payload     []byte
	}{
		{"ni-to-hub-ping", routing.Route{X}, routing.Route{I}, portal.AppendPing(nil)},
		{"hub-to-no-ping", routing.Route{F}, routing.Route{HI, I}, portal.AppendPing(nil)},
		{"no-to-hub-pong", routing.Route{HI, I}, routing.Route{O}, portal.AppendPong(nil, nil)},
		{"hub-to-ni-pong", routing.Route{I}, routing.Route{HO, O}, portal.AppendPong(nil, nil)},
		{"ni-to-hub-data", routing.Route{HO, O}, routing.Route{I}, hello},
		{"hub-to-no-data", routing.Route{O}, routing.Route{HI, I}, hello},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := routing.TransportMessage{Onward: tc.onward, Return: tc.ret, Payload: tc.payload}
			got, err := tcp.AppendFrame(nil, &m, tcp.MaxFrameSize)
			if err != nil {
				t.Fatal(err)
			}
			if want := f[tc.name]; !bytes.Equal(got, want) {
				t.Errorf("got % x\nwant % x", got, want)
			}
		})
	}
}

// TestEarlyDataForms: the exact bytes of the early-data Ping and of an
// offer that took early bytes, and how a 2021 decoder (trailing bytes
// ignored) and an ockamhub one read them.
func TestEarlyDataForms(t *testing.T) {
	ping := portal.AppendPingEarly(nil, 2<<20, []byte("hi"))
	// 00 ‖ "oh" ‖ version 1 ‖ window 2 MiB (80 80 80 01) ‖ 02 "hi"
	if want := []byte{0x00, 'o', 'h', 0x01, 0x80, 0x80, 0x80, 0x01, 0x02, 'h', 'i'}; !bytes.Equal(ping, want) {
		t.Fatalf("early Ping % x, want % x", ping, want)
	}
	m, err := portal.DecodeG3(ping, false)
	if err != nil || m.Tag != portal.TagPing || !m.Early || m.Offset != 2<<20 || string(m.Data) != "hi" {
		t.Fatalf("decoded %+v, %v", m, err)
	}
	// Not the early form: a plain Ping, as to a 2021 outlet.
	for _, p := range [][]byte{{0x00}, {0x00, 'o'}, {0x00, 'o', 'h', 0x02, 0x00, 0x00}, ping[:len(ping)-1], {0x00, 'o', 'h', 0x01, 0x00, 0x80}} {
		if m, err := portal.DecodeG3(p, false); err != nil || m.Tag != portal.TagPing || m.Early {
			t.Errorf("% x: %+v, %v; want a plain Ping", p, m, err)
		}
	}
	big := portal.AppendPingEarly(nil, 0, make([]byte, portal.MaxEarly+1))
	if m, _ := portal.DecodeG3(big, false); m.Early {
		t.Errorf("a Ping with more than MaxEarly bytes read as early data")
	}
	pong := portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 512 << 10, Features: portal.FeatureEarlyData, Early: 2})
	// the offer as before ‖ features 01 ‖ took 02
	if want := append(portal.AppendPong(nil, &portal.Extension{Version: 1, Window: 512 << 10}), 0x01, 0x02); !bytes.Equal(pong, want) {
		t.Fatalf("Pong % x, want % x", pong, want)
	}
	m, err = portal.DecodeG3(pong, false)
	if err != nil || m.Ext == nil || *m.Ext != (portal.Extension{Version: 1, Window: 512 << 10, Features: portal.FeatureEarlyData, Early: 2}) {
		t.Fatalf("decoded %+v, %v", m.Ext, err)
	}
	// Features without the count: not taken as features.
	if m, _ := portal.DecodeG3(pong[:len(pong)-1], false); m.Ext == nil || m.Ext.Features != 0 || m.Ext.Early != 0 {
		t.Fatalf("cut offer decoded as %+v", m.Ext)
	}
}
