package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage/local"
)

// runChainCmd runs tusk args in-process against the folder repository dir.
func runChainCmd(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&rootOpts{stdout: &stdout, stderr: &stderr, env: []string{"TUSK_REPO=file://" + dir}})
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), err
}

// TestChainCommands: delete, backup-mark and verify on a repository holding
// the chain F <- I1 <- I2 (metadata and one part each, and their WAL).
func TestChainCommands(t *testing.T) {
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	seg := func(n int) string { return fmt.Sprintf("%08X%08X%08X", 1, 0, n) }
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	for i, n := range []string{"F", "I1", "I2"} {
		m := basebackup.Meta{Format: 1, Name: n, SystemID: "A", FinishTime: t0.Add(time.Duration(i) * time.Hour),
			StartWAL: seg(4*i + 1), EndWAL: seg(4*i + 2), StartTLI: 1, EndTLI: 1}
		if i > 0 {
			m.Parent, m.ChainFull, m.ChainDepth = []string{"", "F", "I1"}[i], "F", i
		}
		key := basebackup.DataPrefix(n) + "base.1.tar.s2"
		if err := st.Put(ctx, key, strings.NewReader("part")); err != nil {
			t.Fatal(err)
		}
		m.Parts = []basebackup.Part{{Key: key, Archive: "base", Seq: 1, Size: 4}}
		m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(n) + "backup_manifest.s2", Archive: "manifest"}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 12; i++ {
		if err := st.Put(ctx, "wal/0000000100000000/"+seg(i), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
	}

	// target of a backup others are built on: refused, naming them; with
	// --json a document a script can read.
	out, err := runChainCmd(t, dir, "delete", "target", "F", "--json")
	var refusal struct {
		Refused    bool     `json:"refused"`
		Backup     string   `json:"backup"`
		Dependents []string `json:"dependents"`
	}
	if !errors.Is(err, retention.ErrRefused) || json.Unmarshal([]byte(out), &refusal) != nil || !refusal.Refused ||
		refusal.Backup != "F" || !slices.Equal(refusal.Dependents, []string{"I1", "I2"}) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("delete target F: %v\n%s", err, out)
	}

	// The dry run of target FIND_FULL names the dependents it deletes.
	out, err = runChainCmd(t, dir, "delete", "target", "FIND_FULL", "F")
	if err != nil || !strings.Contains(out, "deleting the 2 backup(s) built on F with it: I1, I2") || !strings.Contains(out, "incremental on I1") {
		t.Fatalf("delete target FIND_FULL F: %v\n%s", err, out)
	}
	t.Logf("delete target FIND_FULL F:\n%s", out)

	// retain 1 keeps the newest backup's chain; --json says each backup's
	// kind and parent.
	out, err = runChainCmd(t, dir, "delete", "retain", "1", "--json")
	var plan struct {
		Backups []struct {
			Name, Kind, Parent, Action string
		} `json:"backups"`
	}
	if err != nil || json.Unmarshal([]byte(out), &plan) != nil || len(plan.Backups) != 3 {
		t.Fatalf("delete retain 1 --json: %v\n%s", err, out)
	}
	for i, b := range plan.Backups {
		want := []string{"F full  keep", "I1 incremental F keep", "I2 incremental I1 keep"}[i]
		if got := strings.Join([]string{b.Name, b.Kind, b.Parent, b.Action}, " "); got != want {
			t.Errorf("backup %d: %q, want %q", i, got, want)
		}
	}

	// Marking I2 permanent marks its chain; F cannot be made ordinary then.
	if out, err := runChainCmd(t, dir, "backup-mark", "I2"); err != nil || !strings.Contains(out, "backups F, I1, which incremental backup I2 needs to restore, are now permanent") {
		t.Fatalf("backup-mark I2: %v\n%s", err, out)
	}
	if _, err := runChainCmd(t, dir, "backup-mark", "F", "--impermanent"); !errors.Is(err, retention.ErrNeededByPermanent) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("backup-mark F --impermanent: %v", err)
	}
	for _, n := range []string{"I2", "I1", "F"} {
		if _, err := runChainCmd(t, dir, "backup-mark", n, "--impermanent"); err != nil {
			t.Fatalf("backup-mark %s --impermanent: %v", n, err)
		}
	}

	// F deleted behind tusk's back: verify I2 fails naming it, and garbage
	// deletes the broken backups.
	if err := st.Delete(ctx, basebackup.MetaKey("F")); err != nil {
		t.Fatal(err)
	}
	out, err = runChainCmd(t, dir, "verify", "I2")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(out, "backup F, which backup I2 needs to restore (the parent of I1), is not in the repository, so I2 cannot be restored") {
		t.Fatalf("verify I2 without F: %v\n%s", err, out)
	}
	t.Logf("verify I2:\n%s", out)
	out, err = runChainCmd(t, dir, "delete", "garbage")
	if err != nil || !strings.Contains(out, "backup I1 is broken: backup F of its chain is not in the repository") ||
		!strings.Contains(out, "backup I2 is broken") {
		t.Fatalf("delete garbage: %v\n%s", err, out)
	}
	t.Logf("delete garbage:\n%s", out)
	if _, err := runChainCmd(t, dir, "delete", "garbage", "--confirm"); err != nil {
		t.Fatal(err)
	}
	if ms, err := basebackup.List(ctx, st, nil); err != nil || len(ms) != 0 {
		t.Fatalf("left %v %v", ms, err)
	}
}
