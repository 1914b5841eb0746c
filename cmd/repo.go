package cmd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/s3"
	"github.com/tusk-backup/tusk/wal"
	"github.com/tusk-backup/tusk/walg"
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
	// forListing: an interactive command that reads only what an
	// encrypted repository keeps plain (backup-list, wal-show, delete),
	// so that it also runs where the key is not.
	forListing
)

// interactiveRetries caps the retries of an interactive command's requests:
// three tries, about 3 s of backoff (6 s at most), instead of the archiver's
// minute.
const interactiveRetries = 2

// maxRetries is the retry budget of use.
func (use storeUse) maxRetries(cfg config.Config) int {
	if use == forInteractive || use == forListing {
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
	var inner storage.Storage = storage.NewRetry(st, storage.DefaultRetry, log)
	// wal-g's objects on the same prefix are no older tusk's.
	gopts := storage.GuardOptions{KeyHint: keyHint(cfg.Encryption), Foreign: []string{archive.WALGPrefix, "basebackups_005/"}}
	if cfg.Encryption.Enabled() {
		cs, err := encrypted(inner, cfg.Encryption, log)
		if err != nil {
			return nil, usagef(err)
		}
		inner = cs
		gopts.Encryption = &storage.Encryption{Kind: cs.Kind(), KeyIDs: cs.KeyIDs(), WriteIDs: cs.WriteIDs()}
	}
	g := storage.NewGuardWith(inner, gopts)
	// A missing or wrong key, or a key for a plain repository, is one
	// sentence before any work. Without a key, listing stays possible
	// (forListing). The archiver makes no extra round trip: wal-push's
	// Init reads the marker anyway, and wal-fetch reads it only to
	// explain a failure.
	if use != forArchiver && (use != forListing || cfg.Encryption.Enabled()) {
		if err := g.CheckEncryption(ctx); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// encrypted puts package crypt's decorator around st, with the keys the
// settings give.
func encrypted(st storage.Storage, e config.Encryption, log *slog.Logger) (*crypt.Store, error) {
	if e.Age() {
		ak, err := crypt.LoadAge(e.AgeRecipients, "TUSK_AGE_RECIPIENTS", e.AgeIdentities, "TUSK_AGE_IDENTITY_FILE")
		if err != nil {
			return nil, err
		}
		return crypt.New(st, crypt.Options{Age: ak, Classify: objectClass, Hidden: basebackup.SealedFields,
			PlainHeader: walPlainHeader, Hint: " (" + keyHint(e) + ")"})
	}
	keys, err := crypt.LoadKeys(crypt.KeySource{Inline: e.Key, InlineName: e.KeyFrom, File: e.KeyFile, FileName: e.FileFrom, Transform: e.Transform},
		func(setting string, line, unused int) {
			log.Warn("only the first 32 bytes of an encryption key are used, as wal-g does with transform none; a key of 32 random bytes in hex (TUSK_ENCRYPTION_KEY_TRANSFORM=hex) is better",
				"setting", setting, "line", line, "unused_bytes", unused)
		})
	if err != nil {
		return nil, err
	}
	return crypt.New(st, crypt.Options{Keys: keys, Classify: objectClass, Hidden: basebackup.SealedFields,
		Hint: " (" + keyHint(e) + ")"})
}

// walPlainHeader is what a WAL object shows without its age identity:
// tusk's object header (codec, size, checksum), so that wal-push can tell
// a segment already archived from a different one on a host that only
// writes. Other objects show nothing.
func walPlainHeader(key string, first []byte) int {
	if !strings.HasPrefix(key, wal.Prefix) {
		return 0
	}
	return archive.HeaderLen(first)
}

// keyHint names the settings that gave the keys, or that would.
func keyHint(e config.Encryption) string {
	if e.Age() {
		var from []string
		if e.AgeRecipients != "" {
			from = append(from, "recipients from TUSK_AGE_RECIPIENTS "+e.AgeRecipients)
		}
		if e.AgeIdentities != "" {
			from = append(from, "identities from TUSK_AGE_IDENTITY_FILE "+e.AgeIdentities)
		}
		return strings.Join(from, " and ")
	}
	var from []string
	if e.Key != "" {
		from = append(from, e.KeyFrom)
	}
	if e.KeyFile != "" {
		from = append(from, e.FileFrom+" "+e.KeyFile)
	}
	if len(from) == 0 {
		return "TUSK_ENCRYPTION_KEY or TUSK_ENCRYPTION_KEY_FILE (wal-g's WALG_LIBSODIUM_KEY, WALG_LIBSODIUM_KEY_PATH), or for an age-encrypted repository TUSK_AGE_IDENTITY_FILE"
	}
	return "keys from " + strings.Join(from, " and ")
}

// objectClass is how an encrypted repository stores the object under key
// (package crypt): the marker, a delete's tombstone and a running backup's
// claim in plain text, a backup's metadata sealed (listed without a key,
// authenticated with one), everything else encrypted.
func objectClass(key string) crypt.Class {
	switch {
	case walg.IsPartKey(key):
		return crypt.WALG // wal-g's partitions: its libsodium framing, no additional data
	case strings.HasPrefix(key, walg.Prefix):
		return crypt.Plain // wal-g's sentinels and metadata: never encrypted by wal-g
	case key == storage.MarkerKey:
		return crypt.Plain
	case basebackup.IsMetaKey(key):
		return crypt.Seal
	case basebackup.IsTombstoneKey(key), basebackup.IsStartedKey(key):
		return crypt.Plain
	case strings.HasPrefix(key, archive.WALGPrefix):
		return crypt.WALG // wal-g's WAL: its libsodium framing, no additional data
	}
	return crypt.Encrypt
}

// loadRepo resolves the settings and opens (and checks) the repository: the
// start of every command that reads or changes the repository only.
func (o *rootOpts) loadRepo(c *cobra.Command) (config.Config, *slog.Logger, storage.Storage, error) {
	cfg, log, err := o.load(c)
	if err != nil {
		return cfg, log, nil, err
	}
	use := forInteractive
	if listingOnly(c) {
		use = forListing
	}
	st, err := openStorage(c.Context(), cfg, log, use)
	if err != nil {
		return cfg, log, nil, describeStorageErr(err, cfg)
	}
	return cfg, log, st, nil
}

// listingOnly reports whether c reads only what an encrypted repository
// keeps plain: backup metadata's plain fields and object listings.
func listingOnly(c *cobra.Command) bool {
	switch c.Name() {
	case "backup-list", "wal-show":
		return true
	}
	return c.HasParent() && c.Parent().Name() == "delete"
}

// listBackups lists the finished backups, warning about unreadable metadata.
func listBackups(ctx context.Context, st storage.Storage, log *slog.Logger) ([]basebackup.Meta, error) {
	return walg.ListAll(ctx, st, func(key string, err error) {
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
