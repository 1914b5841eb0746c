package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Records of files pushed ahead, for the mode that leaves PostgreSQL's
// archive_status alone (AheadOptions.Rename false). A push-ahead that has
// durably stored a later .ready file writes a record of it (its size and
// content checksum) into a folder of tusk's own, outside pg_wal; the
// archiver's own call for that file then finds the record, checks the file
// against it and answers at once. So PostgreSQL still calls archive_command
// once per file, and pg_stat_archiver counts every file, as monitoring
// expects; only the upload moved earlier.
//
// A record is written only after its file is stored, and a lost or stale
// record costs nothing but a normal push: a record is trusted only for a
// file whose size and checksum it matches.

// PushedDirFor is the folder of records for the cluster at dataDir archiving
// into repository repo, under base (TUSK_SPOOL_DIR).
func PushedDirFor(base, dataDir, repo string) (string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dataDir, err)
	}
	return filepath.Join(base, "pushed-"+shortHash(abs+"\x00"+repo)), nil
}

// writeRecord records that file, of size bytes with checksum sum (as
// Header.SumString gives it), is stored.
func writeRecord(dir, file string, size int64, sum string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+file+"-")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tmp, "%d %s\n", size, sum)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, file))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// readRecord returns the size and checksum recorded for file.
func readRecord(dir, file string) (int64, string, bool) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, "", false
	}
	sizeText, sum, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if !ok || err != nil {
		return 0, "", false
	}
	return size, sum, true
}

// pruneRecords removes the records of files no longer waiting in
// statusDir (.ready): the archiver has called for them, or they are gone.
func pruneRecords(dir, statusDir string) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
				os.Remove(filepath.Join(dir, name)) // a killed writer's
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(statusDir, name+".ready")); errors.Is(err, fs.ErrNotExist) {
			os.Remove(filepath.Join(dir, name))
		}
	}
}
