package cmd

import (
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/storage"
)

// TestStCheckKey: st put and rm refuse tusk's and wal-g's keys, and any
// prefix that covers them; other keys are the operator's.
func TestStCheckKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"", "w", "wal", "wal/", "wal/0000000100000000/000000010000000000000001", "backups/x.json", "back",
		"tusk-repository.json", "tusk", "basebackups_005/base_1/metadata.json", "wal_005/x.lz4", "b"} {
		if err := stCheckKey("rm", k); err == nil {
			t.Errorf("st rm %q is allowed", k)
		}
	}
	for _, k := range []string{"extra/notes.txt", "x", "walg-notes", "tmp/"} {
		if err := stCheckKey("put", k); err != nil {
			t.Errorf("st put %q: %v", k, err)
		}
	}
	if err := stCheckKey("rm", "wal/"); !strings.Contains(err.Error(), "use wal-push, and delete garbage") {
		t.Errorf("st rm wal/: %v", err)
	}
}

// TestStLsRows: st ls shows the objects directly under the prefix and one
// dir line per folder, as wal-g's; -r shows every object.
func TestStLsRows(t *testing.T) {
	t.Parallel()
	mod := time.Date(2026, 12, 2, 4, 49, 12, 0, time.UTC)
	objs := []storage.Object{{Key: "backups/a.json", Size: 3, ModTime: mod}, {Key: "backups/a/1/base.1.tar.s2", Size: 9, ModTime: mod},
		{Key: "backups/a/1/base.2.tar.s2", Size: 9, ModTime: mod}, {Key: "backups/b.json", Size: 4, ModTime: mod}}
	var rows, all []stRow
	for _, o := range objs {
		rows = stAdd(rows, "backups/", o, false)
		all = stAdd(all, "backups/", o, true)
	}
	var b strings.Builder
	if err := printStRows(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := "type size last modified                 name\n" +
		"obj  3    2026-12-02 04:49:12 +0000 UTC a.json\n" +
		"dir  0    0001-01-01 00:00:00 +0000 UTC a/\n" +
		"obj  4    2026-12-02 04:49:12 +0000 UTC b.json\n"
	if b.String() != want {
		t.Fatalf("st ls:\n%s\nwant\n%s", b.String(), want)
	}
	if len(all) != 4 || all[1].name != "a/1/base.1.tar.s2" {
		t.Fatalf("st ls -r: %+v", all)
	}
}

func TestOtherFileName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"test_file": true, "test_file.history": true, "1000000010000000000000003": true, "a-b.c": true,
		"": false, ".hidden": false, "a b": false, "a/b": false, "x\n": false, strings.Repeat("a", 201): false} {
		if otherFileName(name) != ok {
			t.Errorf("otherFileName(%q) = %v", name, !ok)
		}
	}
}
