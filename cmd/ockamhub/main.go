// Command ockamhub runs Ockam hub nodes and talks to them: see
// `ockamhub help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ockamhub/ockamhub/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default behaviour, so that a
	// second Ctrl-C during a graceful shutdown stops the process at once.
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
