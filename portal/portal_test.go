package portal_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/portal"
)

func TestEchoThroughHub(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
		gen    portal.Generation
		noExt  bool
	}{
		{"G3", false, portal.G3, false},
		{"G3-no-extension", false, portal.G3, true},
		{"G2", false, portal.G2, false},
		{"G3-secure", true, portal.G3, false},
		{"G2-secure", true, portal.G2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hubAddr, _ := startHub(t, hub.Config{}, nil)
			pair := plainPair
			if tc.secure {
				pair = securePair
			}
			addr, in, o := pair(t, hubAddr, echoTarget(t),
				portal.OutletConfig{Generation: tc.gen, Options: portal.Options{NoExtension: tc.noExt}}, portal.InletConfig{})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte("hello portal "), 20000) // 260 KB
			go c.Write(msg)
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs")
			}
			c.Close()
			if tc.gen == portal.G2 {
				return // no close signal in G2
			}
			waitFor(t, "both portals closed", func() bool { return in.Stats().Open == 0 && o.Stats().Open == 0 })
			if in.Stats().Failed != 0 || o.Stats().Failed != 0 {
				t.Errorf("failed portals: inlet %d, outlet %d", in.Stats().Failed, o.Stats().Failed)
			}
		})
	}
}

// TestReadShapes sends requests of sizes around the reader's small first
// buffer (4 KiB, then chunks) one at a time, each echoed back before the
// next: every byte must come back, in order, whichever buffer it was read
// into.
func TestReadShapes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		gen   portal.Generation
		noExt bool
	}{
		{"G3", portal.G3, false},
		{"G3-no-extension", portal.G3, true},
		{"G2", portal.G2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hubAddr, _ := startHub(t, hub.Config{}, nil)
			addr, _, _ := plainPair(t, hubAddr, echoTarget(t),
				portal.OutletConfig{Generation: tc.gen, Options: portal.Options{NoExtension: tc.noExt}}, portal.InletConfig{})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			seq := byte(0)
			for _, n := range []int{1, 4095, 4096, 4097, 3, 4096, 70000, 1, 200000, 4096} {
				msg := make([]byte, n)
				for i := range msg {
					msg[i] = seq
					seq = seq*7 + 1
				}
				errc := make(chan error, 1)
				go func() { _, err := c.Write(msg); errc <- err }()
				got := make([]byte, n)
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("reading the echo of %d bytes: %v", n, err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("the echo of %d bytes differs", n)
				}
			}
		})
	}
}
