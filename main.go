// Command tusk keeps PostgreSQL recoverable to any point in time.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tusk-backup/tusk/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	stopProfile()
	os.Exit(exitCode(ctx, err, os.Stderr))
}

// stopProfile ends a CPU profile started by a tuskprofile build (profile.go).
var stopProfile = func() {}

// exitCode is the one place that turns an error into a process exit code and
// prints it as one sentence on stderr. signals is the context that SIGINT
// and SIGTERM end: an error is an interruption (130) only when it is done. A
// context.Canceled without a signal is a failure that cancelled the work
// around it (an errgroup's first error cancels the others), so it is printed
// as the error it is, never as "interrupted", which would hide the cause.
func exitCode(signals context.Context, err error, stderr io.Writer) int {
	var exit *cmd.ExitError
	var usage *cmd.UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if !exit.Quiet {
			fmt.Fprintf(stderr, "tusk: %v\n", exit.Err)
		}
		return exit.Code
	case errors.Is(err, context.Canceled) && signals.Err() != nil:
		fmt.Fprintln(stderr, "tusk: interrupted")
		return 130
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "tusk: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "tusk: %v\n", err)
		return 1
	}
}
