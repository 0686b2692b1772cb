package forwarding

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ockamhub/ockamhub/internal/backoff"
	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
)

// Connector opens and watches connections to a hub; *tcp.Transport is one.
type Connector interface {
	// Connect returns the address of an open connection to hostport,
	// dialling if there is none.
	Connect(ctx context.Context, hostport string) (routing.Address, error)
	// Done returns a channel closed when the connection at addr closes.
	Done(addr routing.Address) <-chan struct{}
}

// MaintainConfig configures Maintain.
type MaintainConfig struct {
	// Hub is the hub's HOST:PORT.
	Hub string
	// Destination is the local worker that receives what is forwarded.
	Destination string
	// Name, when set, registers this name with the hub's static forwarding
	// service (the address is forward_to_NAME and stays the same across
	// reconnections) instead of a random forwarder. Token goes with it when
	// the hub restricts names.
	Name, Token string
	// Backoff spaces reconnection attempts (jittered exponential; the zero
	// value starts at 100ms and caps at 30s).
	Backoff backoff.Policy
	// RegisterTimeout bounds each registration round trip; 0 means 10s.
	RegisterTimeout time.Duration
	// OnRegistered is called with the forwarding route after every
	// successful registration: the first, and each one after a reconnect
	// (the hub gives a new address each time).
	OnRegistered func(route routing.Route)
	// OnDisconnected is called when the connection to the hub is lost or a
	// connection or registration attempt fails.
	OnDisconnected func(err error)
}

// Maintain keeps a forwarder registered at the hub for as long as ctx
// lasts: it connects, registers, and after losing the connection (the hub
// restarted, the network dropped) reconnects with jittered exponential
// backoff and registers again. It returns ctx's error when ctx ends, and an
// error wrapping ErrRefused at once if the hub refuses the registration (an
// unauthorised or invalid name). A name in use (ErrNameInUse) is retried
// with backoff: it may be held by our own previous connection, which the
// hub has not yet seen close.
func Maintain(ctx context.Context, n *node.Node, c Connector, cfg MaintainConfig) error {
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = 10 * time.Second
	}
	report := func(err error) {
		if cfg.OnDisconnected != nil && ctx.Err() == nil {
			cfg.OnDisconnected(err)
		}
	}
	attempt := 0
	for {
		rf, done, err := registerOnce(ctx, n, c, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrRefused) && !errors.Is(err, ErrNameInUse) {
				return err // the hub said no: retrying will not change that
			}
			report(err)
			if err := cfg.Backoff.Wait(ctx, attempt); err != nil {
				return err
			}
			attempt++
			continue
		}
		attempt = 0
		if cfg.OnRegistered != nil {
			cfg.OnRegistered(rf.Route())
		}
		select {
		case <-ctx.Done():
			rf.Close()
			return ctx.Err()
		case <-done:
			rf.Close()
			report(fmt.Errorf("forwarding: connection to the hub %s lost", cfg.Hub))
		}
	}
}

func registerOnce(ctx context.Context, n *node.Node, c Connector, cfg MaintainConfig) (*RemoteForwarder, <-chan struct{}, error) {
	rctx, cancel := context.WithTimeout(ctx, cfg.RegisterTimeout)
	defer cancel()
	hub, err := c.Connect(rctx, cfg.Hub)
	if err != nil {
		return nil, nil, err
	}
	done := c.Done(hub)
	// A connection that closes before the reply (a hub restarting, a
	// cluster instance that cannot reach the node's owner yet) ends the
	// attempt at once rather than after RegisterTimeout.
	lost := make(chan struct{})
	rctx, stop := context.WithCancel(rctx)
	defer stop()
	go func() {
		select {
		case <-done:
			close(lost)
			stop()
		case <-rctx.Done():
		}
	}()
	var rf *RemoteForwarder
	if cfg.Name != "" {
		rf, err = RegisterStatic(rctx, n, routing.Route{hub}, cfg.Name, cfg.Token, cfg.Destination)
	} else {
		rf, err = Register(rctx, n, routing.Route{hub}, cfg.Destination)
	}
	if err != nil {
		select {
		case <-lost:
			if ctx.Err() == nil {
				return nil, nil, fmt.Errorf("forwarding: connection to the hub %s lost before it answered the registration", cfg.Hub)
			}
		default:
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("forwarding: the hub %s did not answer the registration within %v", cfg.Hub, cfg.RegisterTimeout)
		}
		return nil, nil, err
	}
	return rf, done, nil
}
