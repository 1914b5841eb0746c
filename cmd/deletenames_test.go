package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/retention"
	"github.com/tusk-backup/tusk/storage/local"
)

// TestDeleteGarbageNamesObjects: delete garbage names each object it would
// delete (a dry run) and each one it deletes (--confirm), on stderr as
// wal-g does and in --json's objects, the same ones both times.
func TestDeleteGarbageNamesObjects(t *testing.T) {
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	seg := func(n int) string { return fmt.Sprintf("%08X%08X%08X", 1, 0, n) }
	t0 := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	for i := range 2 { // backups over segments 5-6, 9-10
		m := basebackup.Meta{Format: 1, Name: fmt.Sprintf("base_%02d", i), SystemID: "A", FinishTime: t0.Add(time.Duration(i) * time.Hour),
			StartWAL: seg(4*i + 5), EndWAL: seg(4*i + 6)}
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
	want := []string{"wal/0000000100000000/" + seg(1), "wal/0000000100000000/" + seg(2), "wal/0000000100000000/" + seg(3), "wal/0000000100000000/" + seg(4)}
	garbage := func(inv retention.Inventory) (retention.Plan, error) {
		return retention.Garbage(inv, retention.GarbageOptions{LeftoverAge: time.Hour, Now: time.Now(), WAL: true, Leftovers: true})
	}
	for _, confirm := range []bool{false, true} {
		var stdout, stderr bytes.Buffer
		root := &rootOpts{stdout: &stdout, stderr: &stderr, env: []string{"TUSK_REPO=file://" + dir}}
		c := &cobra.Command{}
		c.SetContext(ctx)
		if err := runDelete(c, root, &deleteOpts{confirm: confirm, json: true}, "garbage", garbage); err != nil {
			t.Fatal(err)
		}
		var out planOutput
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		if !reflect.DeepEqual(out.Objects, want) {
			t.Errorf("confirm %v: objects %v, want %v", confirm, out.Objects, want)
		}
		msg := map[bool]string{false: "object would be deleted", true: "object deleted"}[confirm]
		for _, k := range want {
			if !strings.Contains(stderr.String(), `msg="`+msg+`" key=`+k) {
				t.Errorf("confirm %v: stderr does not name %s:\n%s", confirm, k, stderr.String())
			}
		}
	}
}
