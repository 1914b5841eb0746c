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
	os.Exit(exitCode(err, os.Stderr))
}

// stopProfile ends a CPU profile started by a tuskprofile build (profile.go).
var stopProfile = func() {}

// exitCode is the one place that turns an error into a process exit code and
// prints it as one sentence on stderr.
func exitCode(err error, stderr io.Writer) int {
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
	case errors.Is(err, context.Canceled):
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
