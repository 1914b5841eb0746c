package basebackup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/tusk-backup/tusk/storage"
)

// readStarted reads backup_started.json of backup name. A missing object
// is storage's ErrNotFound, wrapped; one that cannot be understood is
// ErrBadMeta.
func readStarted(ctx context.Context, st storage.Storage, name string) (started, error) {
	var s started
	rc, err := st.Get(ctx, StartedKey(name))
	if err != nil {
		return s, fmt.Errorf("read %s: %w", StartedKey(name), err)
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&s); err != nil {
		return s, fmt.Errorf("read %s: %w: %v", StartedKey(name), ErrBadMeta, err)
	}
	return s, nil
}

// StartedParent reads backup_started.json of the unfinished backup name and
// returns the parent it names: the backup an incremental backup-push is
// taken against ("" for a full one). A missing object is storage's
// ErrNotFound, wrapped; one that cannot be understood is ErrBadMeta.
func StartedParent(ctx context.Context, st storage.Storage, name string) (string, error) {
	s, err := readStarted(ctx, st, name)
	if err != nil {
		return "", err
	}
	if s.Parent != "" && !validName(s.Parent) {
		return "", fmt.Errorf("read %s: %w: names parent %q, which is not a backup name", StartedKey(name), ErrBadMeta, s.Parent)
	}
	return s.Parent, nil
}
