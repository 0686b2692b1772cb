// Package cli is the ockamhub command tree. Main is the whole program; the
// command in cmd/ockamhub only wires it to the process's signals and
// streams, so tests run commands in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type command struct {
	name    string
	summary string
	usage   string // after "ockamhub NAME "
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

var commands []command

func init() {
	commands = []command{
		{"node", "run a hub node (echo_service, forwarding_service)", "[flags]", runNode},
		{"send", "send a string along a route and print the reply", "--route ROUTE [flags] MESSAGE", runSend},
		{"forwarder", "register a forwarding address at a hub and echo what arrives", "--hub HOST:PORT [flags]", runForwarder},
		{"portal", "reach a TCP service behind NAT: portal outlet and portal inlet", "outlet|inlet [flags]", runPortal},
		{"secure-channel", "run a secure channel listener reachable through a hub; print an identity", "listen --hub HOST:PORT [flags] | identity [--key FILE]", runSecureChannel},
		{"bench", "measure a hub under load (echo, forward, bulk, secure, idle, portal), against baselines", "SCENARIO [flags]", runBench},
		{"serve", "run the Hub service: web sign-in, JSON API, and users' hub nodes", "[flags]", runServe},
		{"db", "apply or list the Hub service's database migrations", "migrate|status [flags]", runDB},
	}
}

// usageError is an error in how the command was called: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Main runs the ockamhub command with args (without the program name) and
// returns the process exit code. It returns when ctx is cancelled (the
// process got SIGINT or SIGTERM) after a graceful shutdown.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			return Main(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		printHelp(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e := &env{stdout: stdout, stderr: stderr}
		err := c.run(ctx, e, args[1:])
		var ue *usageError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "ockamhub %s: %v\nRun 'ockamhub %s --help' for usage.\n", c.name, err, c.name)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "ockamhub %s: %s\n", c.name, oneLine(err))
			return exitError
		}
	}
	fmt.Fprintf(stderr, "ockamhub: unknown command %q\nRun 'ockamhub help' for usage.\n", args[0])
	return exitUsage
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `ockamhub: Ockam routing nodes and an Ockam Hub, in Go.

Usage:
  ockamhub COMMAND [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'ockamhub COMMAND --help' for a command's flags.

Examples:
  ockamhub node --listen 127.0.0.1:4000
  ockamhub send --route "1#127.0.0.1:4000 => echo_service" hello
  ockamhub forwarder --hub 127.0.0.1:4000
  ockamhub secure-channel listen --hub 127.0.0.1:4000
  ockamhub send --secure --peer IDENTITY --route "1#127.0.0.1:4000 => 0#ALIAS => secure_channel" hello
  ockamhub portal outlet --target 127.0.0.1:22 --hub 127.0.0.1:4000
  ockamhub portal inlet --listen 127.0.0.1:2222 --route "1#127.0.0.1:4000 => 0#ALIAS"
  ockamhub serve --http 127.0.0.1:8080 --data ./ockamhub-data
`)
}

// flagSet returns a FlagSet for command c whose usage text is complete.
func (e *env) flagSet(name, usage, about string) *flag.FlagSet {
	fs := flag.NewFlagSet("ockamhub "+name, flag.ContinueOnError)
	// The flag package prints its error and the whole usage on a bad flag;
	// parse prints one line instead, and the usage only for --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	usages.Store(fs, func() {
		fmt.Fprintf(e.stderr, "Usage: ockamhub %s %s\n\n%s\n\nFlags:\n", name, usage, about)
		printFlags(e.stderr, fs)
	})
	return fs
}

// printFlags lists fs's flags GNU-style (--name VALUE), which is how users
// type them; the flag package accepts both one and two dashes.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + strings.ToUpper(kind)
		}
		fmt.Fprintln(w, line)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "      %s\n", usage)
	})
}

// logFlags adds --log-level and --log-format to fs and returns a function
// that builds the logger once flags are parsed.
func (e *env) logFlags(fs *flag.FlagSet) func() {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
	return func() {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			lv = slog.LevelInfo
		}
		opts := &slog.HandlerOptions{Level: lv}
		var h slog.Handler
		useJSON := *format == "json"
		if *format == "auto" {
			f, ok := e.stderr.(*os.File)
			useJSON = !ok || !isTerminal(f)
		}
		if useJSON {
			h = slog.NewJSONHandler(e.stderr, opts)
		} else {
			h = slog.NewTextHandler(e.stderr, opts)
		}
		e.log = slog.New(h)
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// usages holds each FlagSet's real usage printer (see flagSet).
var usages sync.Map // *flag.FlagSet -> func()

// parseNoArgs is parse for a command that takes flags only: a positional
// argument is a usage error.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// parse parses args with fs, allowing flags after positional arguments
// ("send hello --route X" as well as "send --route X hello").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if u, ok := usages.Load(fs); ok {
					u.(func())()
				}
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// shutdownBudget bounds graceful shutdowns.
const shutdownBudget = 10 * time.Second

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
