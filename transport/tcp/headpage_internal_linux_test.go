//go:build linux

package tcp

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkCutHead: putting a cut-through frame's outgoing head (48
// bytes) into its pipe, then moving it on (spliced to /dev/null, as to a
// destination socket): "write" copies it into a new pipe page (writev),
// "lend" lends the page of its head slot (vmsplice).
func BenchmarkCutHead(b *testing.B) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
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
				if m, err := syscall.Splice(p.r, nil, int(null.Fd()), nil, k, 0); err != nil || int(m) != k {
					b.Fatal(m, err)
				}
			}
		})
	}
}
