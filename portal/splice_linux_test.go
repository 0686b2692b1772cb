//go:build linux

package portal_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/portal"
)

// The receive path spliced (node.SpliceSink, tcp on Linux): the peer's
// large Data written into the local socket straight from the hub
// connection's socket. Every stream is compared by SHA-256, and each test
// checks that the splice path was taken.

// randStream returns n pseudo-random bytes of stream seed, as a reader.
func randStream(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}), n)
}

func sumOf(r io.Reader) ([32]byte, int64) {
	s, k, _ := sumErr(r)
	return s, k
}

// sumErr is sumOf with the read error.
func sumErr(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	k, err := io.Copy(h, r)
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, k, err
}

// randTarget serves 's' ‖ size ‖ seed with that random stream, then closes
// (the server's end mid-stream, as far as the portal can tell); and 'u' ‖
// size: reads that many bytes and answers their SHA-256.
func randTarget(t testing.TB) string {
	return serveTCP(t, func(c net.Conn) {
		var op [17]byte
		if _, err := io.ReadFull(c, op[:1]); err != nil {
			return
		}
		switch op[0] {
		case 's':
			if _, err := io.ReadFull(c, op[1:]); err != nil {
				return
			}
			io.Copy(c, randStream(binary.BigEndian.Uint64(op[9:]), int64(binary.BigEndian.Uint64(op[1:]))))
		case 'u':
			if _, err := io.ReadFull(c, op[1:9]); err != nil {
				return
			}
			s, _ := sumOf(io.LimitReader(c, int64(binary.BigEndian.Uint64(op[1:]))))
			c.Write(s[:])
		}
	})
}

// download asks for size random bytes of stream seed through addr and
// checks them, and that the stream then ends cleanly; slow makes the
// client slow (slowReader).
func download(addr string, size int64, seed uint64, slow bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	req := []byte{'s'}
	req = binary.BigEndian.AppendUint64(req, uint64(size))
	req = binary.BigEndian.AppendUint64(req, seed)
	if _, err := c.Write(req); err != nil {
		return err
	}
	var r io.Reader = c
	if slow {
		r = &slowReader{r: c}
	}
	got, k, err := sumErr(r)
	want, _ := sumOf(randStream(seed, size))
	if err != nil || k != size || got != want {
		return fmt.Errorf("stream %d: got %d bytes (SHA-256 %x, error %v), want %d (%x)", seed, k, got[:4], err, size, want[:4])
	}
	return nil
}

// slowReader reads 1 KiB at a time, pausing now and then: the portal's
// socket fills up, and its writer takes over.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	s.n++
	if s.n%64 == 0 {
		time.Sleep(time.Millisecond)
	}
	return s.r.Read(p[:min(len(p), 1024)])
}

// TestSpliceDownload: downloads through a plain portal, one stream, a
// slow client, and 16 streams sharing the nodes' hub connections, every
// byte checked, ending cleanly when the target closes after its last
// byte; the inlet spliced the outlet's Data into its clients' sockets.
func TestSpliceDownload(t *testing.T) {
	size := int64(32 << 20)
	if raceEnabled || testing.Short() {
		size = 4 << 20
	}
	addrHub, _ := startHub(t, hub.Config{}, nil)
	addr, in, _ := plainPair(t, addrHub, randTarget(t), portal.OutletConfig{}, portal.InletConfig{})
	t.Run("one", func(t *testing.T) {
		before := in.Stats().Spliced
		if err := download(addr, size, 1, false); err != nil {
			t.Fatal(err)
		}
		if in.Stats().Spliced == before {
			t.Fatal("no Data was spliced into the client's socket")
		}
	})
	t.Run("slow", func(t *testing.T) {
		if err := download(addr, size/8, 2, true); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("16", func(t *testing.T) {
		before := in.Stats().Spliced
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Go(func() { errs <- download(addr, size/16, uint64(100+i), i%4 == 0) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if in.Stats().Spliced == before {
			t.Fatal("no Data was spliced into the clients' sockets")
		}
	})
	if st := in.Stats(); st.Failed != 0 {
		t.Errorf("%d portals failed", st.Failed)
	}
}

// TestSpliceUpload: the client's bytes reach the target whole, the outlet
// splicing the inlet's Data into its target socket.
func TestSpliceUpload(t *testing.T) {
	size := int64(32 << 20)
	if raceEnabled || testing.Short() {
		size = 4 << 20
	}
	addrHub, _ := startHub(t, hub.Config{}, nil)
	addr, _, o := plainPair(t, addrHub, randTarget(t), portal.OutletConfig{}, portal.InletConfig{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	req := binary.BigEndian.AppendUint64([]byte{'u'}, uint64(size))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(c, randStream(7, size)); err != nil {
		t.Fatal(err)
	}
	var got [32]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		t.Fatal(err)
	}
	if want, _ := sumOf(randStream(7, size)); got != want {
		t.Fatal("the target got other bytes than the client sent")
	}
	if o.Stats().Spliced == 0 {
		t.Fatal("no Data was spliced into the target's socket")
	}
}

// TestSpliceClientCloses: clients that close in the middle of their
// downloads end only their own portals: the streams beside them, on the
// same hub connections, get every byte.
func TestSpliceClientCloses(t *testing.T) {
	size := int64(16 << 20)
	if raceEnabled || testing.Short() {
		size = 4 << 20
	}
	addrHub, _ := startHub(t, hub.Config{}, nil)
	addr, in, _ := plainPair(t, addrHub, randTarget(t), portal.OutletConfig{}, portal.InletConfig{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		if i%2 == 0 {
			wg.Go(func() { errs <- download(addr, size/4, uint64(200+i), false) })
			continue
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			req := binary.BigEndian.AppendUint64([]byte{'s'}, uint64(size))
			req = binary.BigEndian.AppendUint64(req, uint64(i))
			if _, err := c.Write(req); err != nil {
				errs <- err
				return
			}
			// Read a part, then go, leaving the rest in flight.
			if _, err := io.CopyN(io.Discard, c, int64(i)<<18); err != nil {
				errs <- err
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if in.Stats().Spliced == 0 {
		t.Fatal("no Data was spliced")
	}
	waitFor(t, "the portals to close", func() bool { return in.Stats().Open == 0 })
	// The connection to the hub still carries new portals.
	if err := download(addr, 1<<20, 300, false); err != nil {
		t.Fatal(err)
	}
}
