package cmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/config"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

func newWALPushCmd(root *rootOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "wal-push WAL_PATH",
		Short: "Archive one WAL file (use as archive_command = 'tusk wal-push %p')",
		Long: `wal-push compresses, checksums and uploads one WAL segment, history, partial or
backup history file, and exits 0 only once it is durably stored. Pushing a file
that is already archived with identical content succeeds; different content is
refused (always for history files, and for segments unless
TUSK_PREVENT_WAL_OVERWRITE=false). A segment (or .partial) must be whole: its
size is the segment size its first page header records, the header is the
one PostgreSQL writes at the LSN its name says, and its system identifier is
the data directory's; anything else is refused and nothing is uploaded.

Because PostgreSQL's archiver calls wal-push for one segment at a time, a call
also uploads up to TUSK_WAL_PUSH_AHEAD later files that PostgreSQL has already
marked .ready, in parallel (TUSK_UPLOAD_CONCURRENCY at once), and marks each one
.done in pg_wal/archive_status once it is durably stored, as PostgreSQL does
after a successful archive_command; the archiver then skips them. A file is
never marked done before its upload has completed.

As wal-g's does, wal-push also stores a file that is not named like WAL (a
plain file name of letters, digits, '.', '_' and '-'), as it is, under
wal/files/NAME: it is not checked as WAL, never pushed ahead, and kept by
retention; pushing it again with other content is refused when its name ends
in .history, or under TUSK_PREVENT_WAL_OVERWRITE.`,
		Example: "  archive_command = 'tusk wal-push %p'",
		Args:    exactArgs(1, "the path of the WAL file to archive (%p)"),
		RunE: func(c *cobra.Command, args []string) error {
			return runWALPush(c, root, args[0])
		},
	}
	addSettingFlags(c.Flags(), "TUSK_COMPRESSION", "TUSK_UPLOAD_CONCURRENCY", "TUSK_PG_READY_RENAME")
	return c
}

func runWALPush(c *cobra.Command, root *rootOpts, path string) error {
	cfg, log, err := root.load(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	// A file not named like WAL is stored as it is, under wal/files/, as
	// wal-g's wal-push stores any file; a name that is not a plain file
	// name is a usage error (exit 2).
	if _, err := wal.ParseName(filepath.Base(path)); err != nil {
		if !otherFileName(filepath.Base(path)) {
			return usagef(err)
		}
		return pushOtherFile(ctx, cfg, log, path)
	}
	var records string
	if !cfg.PGReadyRename && cfg.WALPushAhead > 0 && cfg.Repo.Scheme != "" {
		if records, err = archive.PushedDirFor(cfg.SpoolDir, dataDir(cfg), cfg.Repo.URL); err != nil {
			return err
		}
		// A file a push-ahead has stored is answered before any storage
		// client is made: this call is one of many that PostgreSQL makes.
		if _, ok := (&archive.Archive{Log: log, SumKind: walSumKind(cfg)}).FromRecord(records, path); ok {
			return nil
		}
	}
	st, err := openStorage(ctx, cfg, log, forArchiver)
	if err != nil {
		return err
	}
	if err := st.Init(ctx); err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	a := &archive.Archive{Store: st, Codec: cfg.Compression, Log: log, SumKind: walSumKind(cfg)}
	ahead := archive.AheadOptions{Max: cfg.WALPushAhead, Concurrency: cfg.UploadConcurrency, Rename: cfg.PGReadyRename, RecordDir: records}
	_, err = a.PushAhead(ctx, path, archive.PushOptions{PreventOverwrite: cfg.PreventWALOverwrite, SystemID: walSystemID(path, cfg, log)}, ahead)
	var ow *archive.OverwriteError
	if err != nil && !errors.As(err, &ow) {
		if _, statErr := os.Stat(path); statErr == nil {
			err = diagnose(ctx, st, err)
		}
	}
	return describeStorageErr(err, cfg)
}

// walSystemID returns the system identifier of the cluster whose pg_wal
// holds path (archive_command passes pg_wal/NAME, relative to the data
// directory), else of PGDATA, or 0 when neither can be read: then a
// segment's own header is all wal-push checks.
func walSystemID(path string, cfg config.Config, log *slog.Logger) uint64 {
	dataDir := cfg.PG.DataDir
	if abs, err := filepath.Abs(path); err == nil && filepath.Base(filepath.Dir(abs)) == "pg_wal" {
		dataDir = filepath.Dir(filepath.Dir(abs))
	}
	if dataDir == "" {
		return 0
	}
	id, err := wal.SystemIDOf(dataDir)
	if err != nil {
		log.Debug("system identifier not known; segments are checked against their own headers", "error", err)
		return 0
	}
	n, _ := strconv.ParseUint(id, 10, 64)
	return n
}

// walSumKind is the checksum of new WAL objects: SHA-256 in age mode,
// whose envelopes show a WAL object's header in plain text (package crypt),
// else the faster XXH3-128.
func walSumKind(cfg config.Config) archive.SumKind {
	if cfg.Encryption.Age() {
		return archive.SumSHA256
	}
	return archive.SumXXH3
}

// otherFileName reports whether name is a plain file name wal-push stores
// as it is: letters, digits, '.', '_' and '-', not starting with '.', at
// most 200 bytes.
func otherFileName(name string) bool {
	if name == "" || len(name) > 200 || name[0] == '.' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// otherFilesPrefix is where wal-push stores files not named like WAL.
const otherFilesPrefix = wal.Prefix + "files/"

// pushOtherFile stores the file at path under wal/files/, as wal-g's
// wal-push stores any file: identical content already there is success;
// different content is refused for a .history name (always, as wal-g) or
// under TUSK_PREVENT_WAL_OVERWRITE, and overwritten otherwise.
func pushOtherFile(ctx context.Context, cfg config.Config, log *slog.Logger, path string) error {
	name := filepath.Base(path)
	key := otherFilesPrefix + name
	sum, err := fileSum(path)
	if err != nil {
		return fmt.Errorf("wal-push: cannot read %s: %w", path, unwrapPathErr(err))
	}
	st, err := openStorage(ctx, cfg, log, forArchiver)
	if err != nil {
		return err
	}
	if err := st.Init(ctx); err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	rc, err := st.Get(ctx, key)
	switch {
	case err == nil:
		stored, serr := readerSum(rc)
		rc.Close()
		if serr != nil {
			return describeStorageErr(diagnose(ctx, st, fmt.Errorf("read %s: %w", key, serr)), cfg)
		}
		if stored == sum {
			log.Info("file already archived with identical content", "file", name, "key", key)
			return nil
		}
		if strings.HasSuffix(name, ".history") || cfg.PreventWALOverwrite {
			return &archive.OverwriteError{Key: key, Stored: "sha256:" + stored, Incoming: "sha256:" + sum}
		}
		log.Warn("overwriting an archived file with different content", "file", name, "key", key)
	case !errors.Is(err, storage.ErrNotFound):
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal-push: cannot read %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	if err := st.Put(ctx, key, f); err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	log.Info("file archived", "file", name, "key", key)
	return nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSum(f)
}

func readerSum(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
