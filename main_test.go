package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/tusk-backup/tusk/cmd"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	interrupted, cancel := context.WithCancel(t.Context())
	cancel()
	running := t.Context()
	full := fmt.Errorf("backup b: write part: %w", &os.PathError{Op: "write", Path: "/repo/p", Err: syscall.ENOSPC})
	cases := []struct {
		name    string
		signals context.Context
		err     error
		code    int
		out     string
	}{
		{"success", running, nil, 0, ""},
		{"interrupted", interrupted, fmt.Errorf("upload: %w", context.Canceled), 130, "tusk: interrupted\n"},
		// A cancellation that no signal caused is the echo of a failure, and
		// says what it is: it was "interrupted", exit 130, before.
		{"cancelled by another failure", running, errors.Join(full, context.Canceled), 1,
			"tusk: backup b: write part: write /repo/p: no space left on device\ncontext canceled\n"},
		{"full disk", running, full, 1, "tusk: backup b: write part: write /repo/p: no space left on device\n"},
		{"full disk while a signal came", interrupted, full, 1, "tusk: backup b: write part: write /repo/p: no space left on device\n"},
		{"usage", running, &cmd.UsageError{Err: errors.New("bad flag")}, 2, "tusk: bad flag\n"},
		{"exit code chosen", interrupted, &cmd.ExitError{Code: 200, Err: context.Canceled}, 200, "tusk: context canceled\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := exitCode(c.signals, c.err, &out); code != c.code || out.String() != c.out {
				t.Errorf("exitCode = %d, %q; want %d, %q", code, out.String(), c.code, c.out)
			}
		})
	}
}
