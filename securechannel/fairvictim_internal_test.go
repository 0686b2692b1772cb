package securechannel

import (
	"fmt"
	"testing"

	"github.com/ockamhub/ockamhub/routing"
)

// BenchmarkFairVictim measures the choice of a channel to displace at the
// default caps, for sources of hub depth (connection, alias): the cost a
// new channel or handshake pays once a listener is full.
func BenchmarkFairVictim(b *testing.B) {
	for _, size := range []int{DefaultMaxPendingHandshakes, DefaultMaxChannels} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			cands := make([]*Channel, size)
			for i := range cands {
				ch := &Channel{source: []routing.Address{routing.TCPAddress("127.0.0.1:4000"), routing.LocalAddress(fmt.Sprintf("alias%d", i%64))}}
				ch.lastActive.Store(int64(i))
				cands[i] = ch
			}
			before := func(a, c *Channel) bool { return a.lastActive.Load() < c.lastActive.Load() }
			for b.Loop() {
				fairVictim(cands, before)
			}
		})
	}
}
