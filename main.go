// Command imchannel is a WhatsApp conversation store and channel gateway
// for CTLive. main only parses the command line and hands over to the
// subcommand; see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "imchannel:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the service", runServe},
		{"backup", "write a consistent, checked copy of the database", runBackup},
		{"check", "verify a database file; exit 0 only if clean", runCheck},
		{"migrate", "bring a database file to the current schema", runMigrate},
		{"compact", "write a compacted copy of a database file", runCompact},
		{"restore", "put a checked backup in place of a stopped service's database", runRestore},
		{"erase", "erase every message of one customer number (offline)", runErase},
		{"erased", "tell whether a number was erased, from the audit and the HMAC key", runErased},
		{"version", "print the version and the schema version", runVersion},
	}
}

// Run is the whole program; tests call it in-process.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr) // an error: usage goes with it to stderr
		return &exitError{2, errors.New("no command given")}
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return &exitError{2, fmt.Errorf("unknown command %q", args[0])}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: imchannel <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun imchannel <command> --help for a command's flags.")
}

// newFlags makes a FlagSet that prints its usage to stderr and returns
// errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: imchannel %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}
