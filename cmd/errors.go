package cmd

import (
	"errors"
	"io/fs"
	"os"
)

// ExitError carries an exit code chosen by a command (wal-fetch's "not in the
// archive" is 1, its "storage failed during archive recovery" is above 125).
// Quiet errors are already logged and not printed again.
type ExitError struct {
	Code  int
	Err   error
	Quiet bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// UsageError is bad input from the operator: flags, arguments, settings.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(err error) error { return &UsageError{err} }

// unwrapPathErr drops *PathError's operation and path when the caller's
// sentence already names the file.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return os.ErrNotExist
		}
		return pe.Err
	}
	return err
}
