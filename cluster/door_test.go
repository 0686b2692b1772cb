package cluster

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// echoFrame is a 2021 Rust client's frame to echo_service.
var echoFrame = []byte("\x00\x2d\x01\x01\x00\x0cecho_service\x01\x00\x03app\x16\x15Hello you over there!")

func proxyHeader(t testing.TB, src string) []byte {
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 4242}, &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 4001})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		in          string
		proxy, more bool
	}{
		{"", false, true},
		{"\x00", false, false},
		{"\r\n", false, true},
		{"\r\n\r\n\x00\r\nQUIT\n", true, false},
		{"PROX", false, true},
		{"PROXY ", true, false},
		{"PROXZ", false, false},
		{string(echoFrame[:3]), false, false},
	} {
		proxy, more := sniff([]byte(tc.in))
		if proxy != tc.proxy || more != tc.more {
			t.Errorf("sniff(%q) = %v, %v; want %v, %v", tc.in, proxy, more, tc.proxy, tc.more)
		}
	}
}

// pipe returns the server end of a connection whose client end writes
// chunks, one byte apart when slow.
func pipe(t *testing.T, chunks ...[]byte) net.Conn {
	t.Helper()
	c, s := net.Pipe()
	go func() {
		for _, b := range chunks {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
		c.Close()
	}()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGuardConn(t *testing.T) {
	var bytewise [][]byte
	for _, b := range echoFrame {
		bytewise = append(bytewise, []byte{b})
	}
	for _, tc := range []struct {
		name   string
		chunks [][]byte
		want   []byte // nil: refused
	}{
		{"ockam frame", [][]byte{echoFrame}, echoFrame},
		{"ockam frame byte by byte", bytewise, echoFrame},
		{"PROXY v2 header", [][]byte{append(proxyHeader(t, "127.0.0.9"), echoFrame...)}, nil},
		{"PROXY v2 header byte by byte", [][]byte{[]byte("\r\n\r"), []byte("\n\x00\r\nQUIT\n")}, nil},
		{"PROXY v1 header", [][]byte{[]byte("PROXY TCP4 127.0.0.9 127.0.0.2 1 2\r\n"), echoFrame}, nil},
		{"short and closed", [][]byte{[]byte("\r\n")}, []byte("\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := pipe(t, tc.chunks...)
			g := &guardConn{Conn: s, r: s}
			got, err := io.ReadAll(g)
			if tc.want == nil {
				if !errors.Is(err, ErrProxyRefused) {
					t.Fatalf("read %q, %v; want ErrProxyRefused", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("read %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestReadProxy(t *testing.T) {
	t.Run("relayed", func(t *testing.T) {
		s := pipe(t, proxyHeader(t, "127.0.0.9"), echoFrame)
		g, relayed, err := readProxy(s)
		if err != nil || !relayed {
			t.Fatalf("readProxy: relayed %v, %v", relayed, err)
		}
		if got := g.RemoteAddr().String(); got != "127.0.0.9:4242" {
			t.Errorf("RemoteAddr %s, want the client's 127.0.0.9:4242", got)
		}
		if got, err := io.ReadAll(g); err != nil || !bytes.Equal(got, echoFrame) {
			t.Errorf("payload %q, %v", got, err)
		}
	})
	t.Run("relayed, then a second header", func(t *testing.T) {
		s := pipe(t, proxyHeader(t, "127.0.0.9"), proxyHeader(t, "10.0.0.1"))
		g, _, err := readProxy(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(g); !errors.Is(err, ErrProxyRefused) {
			t.Errorf("second header: %v, want ErrProxyRefused", err)
		}
	})
	t.Run("direct from an instance's address", func(t *testing.T) {
		s := pipe(t, echoFrame)
		g, relayed, err := readProxy(s)
		if err != nil || relayed {
			t.Fatalf("readProxy: relayed %v, %v", relayed, err)
		}
		if got, err := io.ReadAll(g); err != nil || !bytes.Equal(got, echoFrame) {
			t.Errorf("payload %q, %v", got, err)
		}
	})
	t.Run("bad header", func(t *testing.T) {
		s := pipe(t, []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x02xx"))
		if _, _, err := readProxy(s); err == nil {
			t.Fatal("truncated header accepted")
		}
	})
	t.Run("silent", func(t *testing.T) {
		c, s := net.Pipe()
		defer c.Close()
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := readProxy(&shortDeadline{s}); err == nil {
			t.Fatal("no error from a silent connection")
		}
	})
}

// shortDeadline keeps the deadline already set (readProxy's 5 s would
// make the test slow).
type shortDeadline struct{ net.Conn }

func (shortDeadline) SetReadDeadline(time.Time) error { return nil }

// FuzzReadProxy: any bytes from an instance's address are either refused
// with an error or read back (after a header) without a panic.
func FuzzReadProxy(f *testing.F) {
	f.Add(echoFrame)
	f.Add(append(proxyHeader(f, "127.0.0.9"), echoFrame...))
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, s := net.Pipe()
		go func() {
			c.Write(in)
			c.Close()
		}()
		defer s.Close()
		g, _, err := readProxy(s)
		if err != nil {
			return
		}
		io.ReadAll(g)
	})
}

// TestProxyFromClientCounted: a client (not a live instance) that sends a
// PROXY header, posing as a relaying instance, has its connection closed,
// and the refusal is counted before the close, so a client that sees the
// close already sees it counted.
func TestProxyFromClientCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
	}{
		{"v2", proxyHeader(t, "127.0.0.9")},
		{"v1", []byte("PROXY TCP4 127.0.0.9 127.0.0.2 1 2\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Member{log: slog.New(slog.DiscardHandler), peers: map[netip.Addr]bool{}, byPort: map[int]int64{}}
			v := &vlistener{ch: make(chan net.Conn), done: make(chan struct{}), drop: func() {}}
			defer v.Close()
			d := &door{port: 1, local: v}
			c, s := net.Pipe()
			defer c.Close()
			go m.serveConn(d, s)
			go func() { // the node reads what the front door delivers
				g, err := v.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, g)
			}()
			go c.Write(append(tc.head, echoFrame...))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read %d bytes: connection not closed", n)
			}
			if got := m.proxyRefused.Load(); got != 1 {
				t.Fatalf("proxy refused = %d after the close, want 1", got)
			}
		})
	}
}
