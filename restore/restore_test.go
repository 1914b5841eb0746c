package restore

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
)

// storeBackup writes a small uncompressed backup named name into st, as
// backup-push would leave it: one part of the data directory (with a
// tablespace link when ts is set), one of the tablespace, the manifest,
// then the metadata.
func storeBackup(t *testing.T, st storage.Storage, name string, finish time.Time, ts string) basebackup.Meta {
	t.Helper()
	m := basebackup.Meta{Format: 1, Name: name, PGVersion: 150018, SegSize: 16 << 20, StartLSN: 0x2000028, EndLSN: 0x2000100,
		StartTLI: 1, EndTLI: 1, StartTime: finish.Add(-time.Minute), FinishTime: finish, Codec: "none", Tablespaces: []basebackup.Tablespace{{}}}
	base := []tarFile{{name: "global/", dir: true}, {name: "global/pg_control", data: "control"}, {name: "backup_label", data: "label"},
		{name: "PG_VERSION", data: "15\n"}}
	if ts != "" {
		m.Tablespaces = append(m.Tablespaces, basebackup.Tablespace{OID: "16384", Location: ts})
		base = append(base, tarFile{name: "pg_tblspc/", dir: true}, tarFile{name: "pg_tblspc/16384", link: ts})
	}
	put := func(key string, b []byte) basebackup.Part {
		if err := st.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		sum := xxh3.Hash128(b).Bytes()
		return basebackup.Part{Key: key, Seq: 1, RawSize: int64(len(b)), Size: int64(len(b)), Checksum: "xxh3-128:" + hex.EncodeToString(sum[:])}
	}
	p := put(basebackup.DataPrefix(name)+"r1/base.1.tar", tarOf(t, base))
	p.Archive = "base"
	m.Parts = append(m.Parts, p)
	if ts != "" {
		p := put(basebackup.DataPrefix(name)+"r1/16384.1.tar", tarOf(t, []tarFile{{name: "PG_15_202209061/", dir: true}, {name: "PG_15_202209061/1", data: "x"}}))
		p.Archive = "16384"
		m.Parts = append(m.Parts, p)
	}
	m.Manifest = put(basebackup.DataPrefix(name)+"r1/backup_manifest", []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`))
	m.Manifest.Archive = "manifest"
	if err := basebackup.WriteMeta(t.Context(), st, m); err != nil {
		t.Fatal(err)
	}
	return m
}

type tarFile struct {
	name, data, link string
	dir              bool
}

func tarOf(t *testing.T, files []tarFile) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		switch {
		case f.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o700
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRun: without a server, Run chooses, unpacks (tablespaces under the
// folder asked for), writes the recovery settings and reports each phase
// in order; a target no backup reaches, or an empty repository, stops it
// before anything is written.
func TestRun(t *testing.T) {
	t.Parallel()
	st, err := local.New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	empty := Options{Store: st, Name: Latest, Dest: filepath.Join(t.TempDir(), "pgdata"), Log: slog.New(slog.DiscardHandler)}
	if _, err := Run(t.Context(), empty); !errors.Is(err, ErrNoBackups) {
		t.Fatalf("Run on an empty repository: %v, want ErrNoBackups", err)
	}

	finish := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	storeBackup(t, st, "base_000000010000000000000002_20261122T020000Z", finish.Add(-time.Hour), "")
	newest := storeBackup(t, st, "base_000000010000000000000002_20261122T030000Z", finish, "/nonexistent/ts")
	under := t.TempDir()
	dest := filepath.Join(t.TempDir(), "pgdata")
	var phases []Phase
	res, err := Run(t.Context(), Options{
		Store: st, Concurrency: 2, Name: Latest, Dest: dest, Target: Target{Time: finish.Add(time.Minute), Action: "promote"},
		RestoreCommand: "tusk wal-fetch %f %p", TablespacesUnder: under, Log: slog.New(slog.DiscardHandler),
		Progress: func(p Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backup.Name != newest.Name || !res.Restored || res.Server != nil || res.Recovery != nil || res.Dest != dest {
		t.Fatalf("Run = %+v", res)
	}
	if want := []Phase{Chosen, Unpacking, Restored}; len(phases) < 2 || phases[0] != Chosen || phases[len(phases)-1] != Restored {
		t.Errorf("phases %v, want %v (Unpacking only if the restore takes long enough)", phases, want)
	}
	conf, err := os.ReadFile(filepath.Join(dest, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(conf), "restore_command = 'tusk wal-fetch %f %p'") || !strings.Contains(string(conf), "recovery_target_action = 'promote'") {
		t.Errorf("postgresql.auto.conf: %v\n%s", err, conf)
	}
	for _, f := range []string{"recovery.signal", "global/pg_control", "backup_manifest", filepath.Join("pg_tblspc", "16384", "PG_15_202209061", "1")} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("the restore lacks %s: %v", f, err)
		}
	}
	if link, err := os.Readlink(filepath.Join(dest, "pg_tblspc", "16384")); err != nil || link != filepath.Join(under, "16384") {
		t.Errorf("tablespace link %q, %v; want it under %s", link, err, under)
	}

	dest2 := filepath.Join(t.TempDir(), "pgdata")
	_, err = Run(t.Context(), Options{Store: st, Name: Latest, Dest: dest2, Target: Target{Time: finish.Add(-2 * time.Hour)}, Log: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, ErrTarget) {
		t.Fatalf("Run to a time before every backup: %v, want ErrTarget", err)
	}
	if _, err := os.Stat(dest2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore made %s: %v", dest2, err)
	}
}
