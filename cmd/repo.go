package cmd

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/s3"
)

// storeUse is who a command serves, which decides its S3 retry budget (the
// SDK's policy, with two budgets; what S3 does not retry, and the folder
// backend, get storage.Retry's one budget whatever the use) and whether the
// repository is checked before any work.
type storeUse int

const (
	// forArchiver: wal-push and wal-fetch serve PostgreSQL, which waits for
	// them and must ride out an outage: TUSK_S3_MAX_RETRIES retries per
	// request (8: about a minute of backoff), no Check (a round trip per
	// call).
	forArchiver storeUse = iota
	// forBackup: backup-push, an unattended job of hours that one outage
	// should not throw away: TUSK_S3_MAX_RETRIES, after a Check.
	forBackup
	// forInteractive: every other command, usually someone waiting at a
	// terminal (or a cron job that runs again): at most interactiveRetries,
	// so a wrong or dead endpoint is one sentence in seconds, after a Check.
	forInteractive
)

// interactiveRetries caps the retries of an interactive command's requests:
// three tries, about 3 s of backoff (6 s at most), instead of the archiver's
// minute.
const interactiveRetries = 2

// maxRetries is the retry budget of use.
func (use storeUse) maxRetries(cfg config.Config) int {
	if use == forInteractive {
		return min(cfg.S3.MaxRetries, interactiveRetries)
	}
	return cfg.S3.MaxRetries
}

// openStorage builds the repository's storage from the settings, behind
// storage.Retry (the one retry decorator, for what the backend does not
// retry itself; see package storage) and a storage.Guard (a miss is "not
// found" only in a repository that is there).
// Except for the archiver it also runs the store's Check, so that a
// misconfiguration is reported as one sentence before any work starts.
func openStorage(ctx context.Context, cfg config.Config, log *slog.Logger, use storeUse) (*storage.Guard, error) {
	var st interface {
		storage.Storage
		storage.Checker
	}
	var err error
	switch cfg.Repo.Scheme {
	case "":
		return nil, usagef(errNoRepo)
	case "file":
		st, err = local.New(cfg.Repo.Path)
	case "s3":
		st, err = s3.New(ctx, s3.Config{
			Bucket:            cfg.Repo.Bucket,
			Prefix:            cfg.Repo.Prefix,
			Endpoint:          cfg.S3.Endpoint,
			ForcePathStyle:    cfg.S3.ForcePathStyle,
			Region:            cfg.S3.Region,
			AccessKeyID:       cfg.S3.AccessKeyID,
			SecretAccessKey:   cfg.S3.SecretAccessKey,
			SessionToken:      cfg.S3.SessionToken,
			Profile:           cfg.S3.Profile,
			SSE:               cfg.S3.SSE,
			SSEKMSKeyID:       cfg.S3.SSEKMSKeyID,
			StorageClass:      cfg.S3.StorageClass,
			PartSize:          cfg.S3.PartSize,
			UploadConcurrency: cfg.UploadConcurrency,
			MaxRetries:        s3Retries(use.maxRetries(cfg)),
			StallTimeout:      cfg.S3.StallTimeout,
			Logger:            log,
		})
	default:
		return nil, usagef(fmt.Errorf("repository scheme %q is not supported", cfg.Repo.Scheme))
	}
	if err != nil {
		return nil, usagef(err)
	}
	if use != forArchiver {
		if err := st.Check(ctx); err != nil {
			return nil, err
		}
	}
	return storage.NewGuard(storage.NewRetry(st, storage.DefaultRetry, log)), nil
}

// loadRepo resolves the settings and opens (and checks) the repository: the
// start of every command that reads or changes the repository only.
func (o *rootOpts) loadRepo(c *cobra.Command) (config.Config, *slog.Logger, storage.Storage, error) {
	cfg, log, err := o.load(c)
	if err != nil {
		return cfg, log, nil, err
	}
	st, err := openStorage(c.Context(), cfg, log, forInteractive)
	if err != nil {
		return cfg, log, nil, describeStorageErr(err, cfg)
	}
	return cfg, log, st, nil
}

// listBackups lists the finished backups, warning about unreadable metadata.
func listBackups(ctx context.Context, st storage.Storage, log *slog.Logger) ([]basebackup.Meta, error) {
	return basebackup.List(ctx, st, func(key string, err error) {
		log.Warn("skipping unreadable backup metadata", "key", key, "error", err)
	})
}

// s3Retries maps TUSK_S3_MAX_RETRIES onto s3.Config.MaxRetries, where 0
// means the default and a negative number no retries.
func s3Retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
