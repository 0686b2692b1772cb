package hub_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/ockamhub/ockamhub/hub"
	"github.com/ockamhub/ockamhub/hub/hubtest"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// TestCutThroughForwarderBytes: large and small messages through a
// registered forwarder reach the registrant byte for byte as with
// --no-cut-through, and the large ones are cut through.
func TestCutThroughForwarderBytes(t *testing.T) {
	const count = 60
	sizes := []int{60000, 100, 20000, 65000, 3000}
	run := func(noCut bool) ([]byte, hub.Stats) {
		h, addr := hubtest.Start(t, hub.Config{NoCutThrough: noCut})
		resp := dialRaw(t, addr)
		resp.write(frames(t, "capture-gs-11-responder-to-hub")[0])
		fwd := decode(t, resp.readFrame()).Return[0]
		init := dialRaw(t, addr)
		var stream []byte
		for i := range count {
			m := routing.TransportMessage{Version: 1,
				Onward:  routing.Route{fwd, routing.LocalAddress("ignored")},
				Return:  routing.Route{routing.LocalAddress("app")},
				Payload: bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])}
			f, err := tcp.AppendFrame(nil, &m, 0)
			if err != nil {
				t.Fatal(err)
			}
			stream = append(stream, f...)
		}
		go init.Write(stream)
		var got []byte
		var initAlias string
		for range count {
			f := resp.readFrame()
			if initAlias == "" {
				initAlias = decode(t, f).Return[0].Value
			}
			got = append(got, f...)
		}
		// The initiator's alias is random: the same length each run.
		return bytes.ReplaceAll(got, []byte(initAlias), []byte("0000000000000000")), h.Stats()
	}
	want, _ := run(true)
	got, st := run(false)
	if !bytes.Equal(got, want) {
		t.Fatalf("with cut-through the registrant got %d bytes that differ from the %d without", len(got), len(want))
	}
	if runtime.GOOS == "linux" && st.TCP.CutThrough == 0 {
		t.Error("nothing was cut through")
	}
	t.Logf("%d frames cut through", st.TCP.CutThrough)
}
