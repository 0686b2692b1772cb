//go:build linux

package tcp

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// BenchmarkCutHead: putting a cut-through frame's outgoing head (48
// bytes) into its pipe, then splicing it into a TCP socket (as into a
// destination, whose peer reads it): "write" copies it into a new pipe page
// (writev), "lend" lends the page of its head slot (vmsplice).
func BenchmarkCutHead(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ac, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close()
	go io.Copy(io.Discard, ac)
	f, err := nc.(*net.TCPConn).File()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := int(f.Fd())
	head := make([]byte, 48)
	for i := range head {
		head[i] = byte(i)
	}
	for _, mode := range []string{"write", "lend"} {
		b.Run(mode, func(b *testing.B) {
			p := getPipe()
			if p == nil {
				b.Skip("no pipe")
			}
			defer discardPipe(p)
			slot, ok := takeHeadSlot(head)
			if !ok {
				b.Fatal("no head slot")
			}
			defer slot.release()
			iov := []syscall.Iovec{{Base: &head[0]}}
			iov[0].SetLen(len(head))
			b.ReportAllocs()
			for b.Loop() {
				var k int
				var err error
				if mode == "lend" {
					k, err = vmsplicePipe(p.w, slot.b)
				} else {
					k, err = writePipe(p.w, iov)
				}
				if err != nil || k != len(head) {
					b.Fatal(k, err)
				}
				if m, err := syscall.Splice(p.r, nil, out, nil, k, 0); err != nil || int(m) != k {
					b.Fatal(m, err)
				}
			}
		})
	}
}
