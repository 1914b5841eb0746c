package wal

import (
	"context"
	"fmt"

	"github.com/tusk-backup/tusk/storage"
)

// TimelinePrefix is the key prefix of timeline tli's segments, .partial and
// .backup files; its history file is under Prefix + "timelines/".
func TimelinePrefix(tli uint32) string { return fmt.Sprintf("%s%08X", Prefix, tli) }

// List lists the repository's WAL objects under prefix (Prefix for all of
// them, TimelinePrefix for one timeline's) and calls fn for each in key
// order with its file name; ok is false for an object that is not a WAL
// file where Key would put it (a stray, not tusk's). It returns st.List's
// error, or fn's, as it is.
func List(ctx context.Context, st storage.Storage, prefix string, fn func(o storage.Object, n Name, ok bool) error) error {
	return st.List(ctx, prefix, func(o storage.Object) error {
		n, ok := NameOf(o.Key)
		return fn(o, n, ok)
	})
}
