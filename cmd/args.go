package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/storage/s3"
)

// exactArgs is cobra.ExactArgs with a sentence that says what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(fmt.Errorf("%s takes %s; got %d argument(s) (see tusk %s --help)", c.Name(), what, len(args), c.Name()))
		}
		return nil
	}
}

// describeStorageErr adds which setting to look at to storage errors whose
// cause is configuration.
func describeStorageErr(err error, cfg Config) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, s3.ErrAccessDenied), errors.Is(err, s3.ErrNoSuchBucket), errors.Is(err, s3.ErrUnreachable):
		return fmt.Errorf("repository %s: %w", cfg.Repo, err)
	}
	return err
}
