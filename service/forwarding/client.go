package forwarding

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ockamhub/ockamhub/bare"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// RegisterPayload is what clients send to register, as Rust's
// RemoteForwarder does; the hub echoes it back.
const RegisterPayload = "register"

// ErrRefused means the hub refused a registration and said why (for a
// static name: unauthorised, or an invalid name).
var ErrRefused = errors.New("forwarding: registration refused")

// ErrNameInUse means the hub refused a name because another connection
// holds it (and the registration carried no token for it). It comes
// wrapped with ErrRefused; Maintain retries it, since the holder may be a
// connection of ours that the hub has not yet seen close.
var ErrNameInUse = errors.New("forwarding: name in use")

// RemoteForwarder is a registration with a hub's forwarding service: the
// Go counterpart of Rust's RemoteForwarder. Messages sent to its forwarding
// route reach the hub, then this node, which delivers them to a local
// destination worker with their return route intact, so the destination's
// replies go straight back to the original sender.
//
// It is safe for concurrent use. Close stops the local worker; the hub
// removes the forwarder when the connection closes.
type RemoteForwarder struct {
	node        *node.Node
	worker      routing.Address
	destination routing.Address

	payload string // what was sent; the hub echoes it
	once    sync.Once
	ready   chan struct{}
	route   routing.Route
	err     error
}

// Register registers with the forwarding service of the hub reached through
// hub (a type-1 address of an open connection, e.g. from tcp.Connect, or any
// route prefix ending before forwarding_service) and delivers what arrives to
// the local worker destination. It returns once the hub has answered, or
// when ctx ends.
func Register(ctx context.Context, n *node.Node, hub routing.Route, destination string) (*RemoteForwarder, error) {
	return register(ctx, n, hub.Append(routing.LocalAddress(ServiceAddress)), RegisterPayload, destination)
}

// RegisterStatic registers the name with the hub's static forwarding
// service (which the hub runs only when enabled) and delivers what arrives at
// forward_to_NAME to destination. Registering a name again, from anywhere,
// moves it when token is the name's token; a name held by another
// connection is otherwise refused with ErrNameInUse. token is required
// when the hub restricts names ("" otherwise).
func RegisterStatic(ctx context.Context, n *node.Node, hub routing.Route, name, token, destination string) (*RemoteForwarder, error) {
	payload := name
	if token != "" {
		payload += ":" + token
	}
	return register(ctx, n, hub.Append(routing.LocalAddress(StaticServiceAddress)), payload, destination)
}

func register(ctx context.Context, n *node.Node, route routing.Route, payload, destination string) (*RemoteForwarder, error) {
	rf := &RemoteForwarder{node: n, destination: routing.LocalAddress(destination), ready: make(chan struct{}), payload: payload}
	addrs, err := n.StartWorkerConfig(ctx, node.HandlerFunc(rf.handle), node.WorkerConfig{})
	if err != nil {
		return nil, err
	}
	rf.worker = addrs[0]
	if err := n.Route(ctx, routing.TransportMessage{
		Version: routing.Version,
		Onward:  route,
		Return:  routing.Route{rf.worker},
		Payload: bare.AppendString(nil, payload),
	}); err != nil {
		rf.Close()
		return nil, fmt.Errorf("forwarding: registering at %s: %w", route, err)
	}
	select {
	case <-rf.ready:
	case <-ctx.Done():
		rf.Close()
		return nil, fmt.Errorf("forwarding: waiting for %s: %w", route, ctx.Err())
	}
	if rf.err != nil {
		rf.Close()
		return nil, rf.err
	}
	return rf, nil
}

// Route returns the forwarding route that reaches this forwarder's
// destination through the hub, e.g. 1#127.0.0.1:4000 => 0#1a840b9c.
func (rf *RemoteForwarder) Route() routing.Route { return rf.route }

// RemoteAddress returns the forwarder's address on the hub (16 hex digits
// from this hub, 8 from the Elixir Hub, forward_to_NAME for a name).
func (rf *RemoteForwarder) RemoteAddress() string {
	a, _ := rf.route.Recipient()
	return a.Value
}

// WorkerAddress returns the local worker that receives from the hub.
func (rf *RemoteForwarder) WorkerAddress() routing.Address { return rf.worker }

// Close stops the local worker.
func (rf *RemoteForwarder) Close() error {
	return rf.node.StopWorker(context.Background(), rf.worker.Value)
}

func (rf *RemoteForwarder) handle(ctx context.Context, s node.Sender, m *node.Message) error {
	select {
	case <-rf.ready:
	default:
		if rf.acceptReply(m) {
			return nil
		}
		// Not the hub's reply: a message already on its way to a name
		// that has just moved here. Deliver it.
	}
	tm := m.Transport()
	tm.Onward = routing.Route{rf.destination}
	return s.Forward(ctx, tm)
}

// acceptReply takes m as the hub's registration reply if it is one: the
// payload echoed back, or "error: REASON" from the service.
func (rf *RemoteForwarder) acceptReply(m *node.Message) bool {
	body, err := node.Body[string](m)
	switch {
	case err == nil && body == rf.payload && len(m.Return()) >= 2:
		rf.once.Do(func() {
			rf.route = m.Return().Clone() // kept: not the frame's memory
			close(rf.ready)
		})
		return true
	case err == nil && strings.HasPrefix(body, "error: "):
		rf.once.Do(func() {
			reason := strings.TrimPrefix(body, "error: ")
			rf.err = fmt.Errorf("%w: the hub says %q", ErrRefused, reason)
			if reason == reasonInUse {
				rf.err = fmt.Errorf("%w: %w", rf.err, ErrNameInUse)
			}
			close(rf.ready)
		})
		return true
	}
	return false
}
