package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/s3"
)

// exactArgs is cobra.ExactArgs with a sentence that says what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(fmt.Errorf("%s takes %s; got %d argument(s) (see %s --help)", c.Name(), what, len(args), c.CommandPath()))
		}
		return nil
	}
}

// diagnose turns a failed storage call into the clearer sentence of the
// store's own check when the repository itself is the problem (a folder that
// cannot be created, a bucket that does not exist), and returns err otherwise.
func diagnose(ctx context.Context, st storage.Storage, err error) error {
	if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrNoRepository) || ctx.Err() != nil {
		return err
	}
	c, ok := storage.As[storage.Checker](st)
	if !ok {
		return err
	}
	if cerr := c.Check(ctx); cerr != nil {
		return cerr
	}
	return err
}

// describeStorageErr adds which setting to look at to storage errors whose
// cause is configuration.
func describeStorageErr(err error, cfg config.Config) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, s3.ErrAccessDenied), errors.Is(err, s3.ErrNoSuchBucket), errors.Is(err, s3.ErrUnreachable), errors.Is(err, s3.ErrNotS3),
		errors.Is(err, storage.ErrNoRepository), errors.Is(err, storage.ErrEncryption):
		return fmt.Errorf("repository %s: %w", cfg.Repo, err)
	case errors.Is(err, basebackup.ErrEncrypted) && cfg.Encryption.Age():
		return fmt.Errorf("%w: this host has only age recipients (TUSK_AGE_RECIPIENTS), and reading needs an identity: set TUSK_AGE_IDENTITY_FILE", err)
	case errors.Is(err, basebackup.ErrEncrypted):
		return fmt.Errorf("%w: set %s", err, keyHint(config.Encryption{}))
	}
	return err
}
