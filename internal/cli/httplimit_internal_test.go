package cli

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestHTTPLimitListener: a source over its limit is closed at once and
// counted, another source still gets in, a full listener waits in Accept
// until a connection closes, and Close ends a waiting Accept.
func TestHTTPLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := newHTTPLimitListener(ln, 3, 2, slog.New(slog.DiscardHandler))
	defer hl.Close()
	accepted := make(chan net.Conn, 10)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := hl.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	wait := func(what string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not accepted", what)
		}
		return nil
	}
	dial("127.0.0.1")
	a1 := wait("first from .1")
	dial("127.0.0.1")
	wait("second from .1")
	// A third from 127.0.0.1 is over its limit of 2: closed at once.
	third := dial("127.0.0.1")
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("third connection from one address: read %v, want it closed", err)
	}
	if hl.refused.Load() != 1 {
		t.Fatalf("refused %d, want 1", hl.refused.Load())
	}
	dial("127.0.0.2")
	wait("first from .2")
	// Three open: the listener is full, the next one waits...
	dial("127.0.0.3")
	select {
	case <-accepted:
		t.Fatal("a fourth connection was accepted over the total of 3")
	case <-time.After(100 * time.Millisecond): // a negative check: nothing to wait for
	}
	// ...until one closes.
	a1.Close()
	wait("the waiting one, after a close")
	hl.Close()
	select {
	case err := <-acceptErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}
