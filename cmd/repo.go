package cmd

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/s3"
)

// checker is a store that can test, in one round trip, that the repository
// is usable (folder writable, bucket reachable with these credentials).
type checker interface {
	Check(ctx context.Context) error
}

// openStorage builds the repository's storage from the settings, behind a
// storage.Guard (a miss is "not found" only in a repository that is there).
// With check set it also runs the store's Check, so that a misconfiguration
// is reported as one sentence before any work starts.
func openStorage(ctx context.Context, cfg Config, log *slog.Logger, check bool) (*storage.Guard, error) {
	var st interface {
		storage.Storage
		checker
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
			MaxRetries:        s3Retries(cfg.S3.MaxRetries),
			Logger:            log,
		})
	default:
		return nil, usagef(fmt.Errorf("repository scheme %q is not supported", cfg.Repo.Scheme))
	}
	if err != nil {
		return nil, usagef(err)
	}
	if check {
		if err := st.Check(ctx); err != nil {
			return nil, err
		}
	}
	return storage.NewGuard(st), nil
}

// loadRepo resolves the settings and opens (and checks) the repository: the
// start of every command that reads or changes the repository only.
func (o *rootOpts) loadRepo(c *cobra.Command) (Config, *slog.Logger, storage.Storage, error) {
	cfg, log, err := o.load(c)
	if err != nil {
		return cfg, log, nil, err
	}
	st, err := openStorage(c.Context(), cfg, log, true)
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
