package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage/local"
)

// TestDeleteSparedExitsOne: a backup marked permanent between the plan and
// its execution (as a backup-mark running alongside would) is spared with
// the WAL it needs; the rest goes, the report says so, and the delete exits
// 1 with one sentence naming the backup and what to do.
func TestDeleteSparedExitsOne(t *testing.T) {
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	seg := func(n int) string { return fmt.Sprintf("%08X%08X%08X", 1, 0, n) }
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	for i := range 3 { // backups over segments 1-2, 5-6, 9-10
		m := basebackup.Meta{Format: 1, Name: fmt.Sprintf("base_%02d", i), SystemID: "A", FinishTime: t0.Add(time.Duration(i) * time.Hour),
			StartWAL: seg(4*i + 1), EndWAL: seg(4*i + 2)}
		key := basebackup.DataPrefix(m.Name) + "base.1.tar.s2"
		if err := st.Put(ctx, key, strings.NewReader("part")); err != nil {
			t.Fatal(err)
		}
		m.Parts = []basebackup.Part{{Key: key, Archive: "base", Seq: 1}}
		m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(m.Name) + "backup_manifest.s2", Archive: "manifest"}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 12; i++ {
		if err := st.Put(ctx, "wal/0000000100000000/"+seg(i), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	root := &rootOpts{stdout: &stdout, stderr: &stderr, env: []string{"TUSK_REPO=file://" + dir}}
	c := &cobra.Command{}
	c.SetContext(ctx)
	err = runDelete(c, root, &deleteOpts{confirm: true}, "retain 1", func(inv retention.Inventory) (retention.Plan, error) {
		p, err := retention.Retain(inv, retention.RetainOptions{Keep: 1, Now: time.Now()})
		m, rerr := basebackup.ReadMeta(ctx, st, "base_00") // backup-mark, after the plan
		if rerr != nil {
			t.Fatal(rerr)
		}
		m.Permanent = true
		if werr := basebackup.WriteMeta(ctx, st, m); werr != nil {
			t.Fatal(werr)
		}
		return p, err
	})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(err.Error(), "spared backup base_00") ||
		!strings.Contains(err.Error(), "tusk backup-mark base_00 --impermanent") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want exit 1 with one sentence naming base_00", err)
	}
	out := stdout.String()
	if !strings.Contains(out, "spared backup base_00") || !strings.Contains(out, "kept 2 WAL objects") || !strings.Contains(out, "deleted 1 backup(s)") {
		t.Fatalf("report:\n%s", out)
	}
	t.Logf("%s\ntusk: %v", out, err)
	ms, err := basebackup.List(ctx, st, nil)
	if err != nil || len(ms) != 2 || ms[0].Name != "base_00" || ms[1].Name != "base_02" {
		t.Fatalf("left %v %v", ms, err)
	}
}
