//go:build linux

package portal

import (
	"errors"
	"io"
	"net"
	"testing"
)

// TestReadRaw: rawReader reads what is there without calling waiting, calls
// it once before it waits, then returns what arrives; io.EOF at the end
// of the stream, an error once the connection is closed under it.
func TestReadRaw(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rc := directConn(nc)
	if rc == nil {
		t.Fatal("no raw connection for a TCP socket")
	}
	rr := newRawReader(rc)
	readRaw := func(p []byte, waiting func()) (int, error) { return rr.read(p, waiting) }
	waits := 0
	waiting := func() { waits++ }
	buf := make([]byte, 16)

	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The bytes may not have arrived yet: waiting may be called, at most
	// once, and the read returns them.
	n, err := readRaw(buf, waiting)
	if err != nil || string(buf[:n]) != "hello" || waits > 1 {
		t.Fatalf("read %q, %v after %d waits", buf[:n], err, waits)
	}

	// Waiting is called when nothing is there: the peer writes only once
	// told that the reader waits.
	waits = 0
	told := make(chan struct{})
	go func() {
		<-told
		peer.Write([]byte("!"))
	}()
	n, err = readRaw(buf, func() { waits++; close(told) })
	if err != nil || string(buf[:n]) != "!" || waits != 1 {
		t.Fatalf("read %q, %v after %d waits", buf[:n], err, waits)
	}

	if n, err := readRaw(buf[:0], waiting); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}

	peer.Close()
	if n, err := readRaw(buf, waiting); n != 0 || err != io.EOF {
		t.Fatalf("at the end of the stream: %d, %v; want io.EOF", n, err)
	}
	nc.Close()
	if _, err := readRaw(buf, waiting); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("on a closed connection: %v", err)
	}
}
