package portal

import (
	"fmt"
	"sync"

	"github.com/ockamhub/ockamhub/routing"
)

// connWatch fails the portals whose route starts with a TCP connection
// when that connection closes (Options.ConnDone), with one goroutine per
// connection that has portals rather than one per portal. The zero value
// is ready; it is safe for concurrent use.
type connWatch struct {
	mu    sync.Mutex
	conns map[<-chan struct{}]*watched // by the connection's done channel
}

type watched struct {
	hop     routing.Address
	portals map[*pconn]struct{}
	stop    chan struct{} // closed when the last portal has gone
}

// add watches done, the channel of the connection hop, for c; remove
// undoes it.
func (w *connWatch) add(hop routing.Address, done <-chan struct{}, c *pconn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == nil {
		w.conns = make(map[<-chan struct{}]*watched)
	}
	e := w.conns[done]
	if e == nil {
		e = &watched{hop: hop, portals: make(map[*pconn]struct{}), stop: make(chan struct{})}
		w.conns[done] = e
		go w.wait(done, e)
	}
	e.portals[c] = struct{}{}
}

func (w *connWatch) remove(done <-chan struct{}, c *pconn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.conns[done]
	if e == nil {
		return
	}
	delete(e.portals, c)
	if len(e.portals) == 0 {
		delete(w.conns, done)
		close(e.stop)
	}
}

// wait fails e's portals when done closes, unless they have all gone.
func (w *connWatch) wait(done <-chan struct{}, e *watched) {
	select {
	case <-done:
	case <-e.stop:
		return
	}
	w.mu.Lock()
	if w.conns[done] == e {
		delete(w.conns, done)
	}
	portals := e.portals
	e.portals = nil
	w.mu.Unlock()
	for c := range portals {
		// fail may wait (the Disconnect): not here, for every portal.
		go c.fail(fmt.Errorf("%w: %s", ErrConnLost, e.hop))
	}
}
