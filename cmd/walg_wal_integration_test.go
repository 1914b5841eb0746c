package cmd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	s3store "github.com/tusk-backup/tusk/storage/s3"
	"github.com/tusk-backup/tusk/verify"
	"github.com/tusk-backup/tusk/wal"
)

// The tests of reading wal-g's WAL archive: repositories whose WAL wal-g's
// wal-push wrote (package walgtest writes it as wal-g does, since CI cannot
// build wal-g), read by tusk's wal-fetch, its prefetcher, wal-show and
// wal-verify, side by side with tusk's own objects.

// walgLibsodiumKey is a WALG_LIBSODIUM_KEY as wal-g takes it (transform
// none: at least 25 bytes).
const walgLibsodiumKey = "wal-g's libsodium key, 32 bytes!"

// repoStore is a storage client of repo, for the test to write into it as
// wal-g would.
func repoStore(t *testing.T, repo repository) storage.Storage {
	t.Helper()
	if repo.minio == nil {
		st, err := local.New(repo.dir)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	m := repo.minio
	st, err := s3store.New(t.Context(), s3store.Config{Bucket: m.Bucket, Prefix: "repo", Endpoint: m.Endpoint, ForcePathStyle: true,
		Region: m.Region, AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// walgArchiver stands for wal-g's wal-push as a server's archive_command:
// the server copies each file into a staging folder (archiveCommand), and
// a goroutine writes every file that appears there into st as wal-g's
// wal-push writes it, then removes it. It stops at the test's end; call it
// before the server starts, so that it stops after the server.
type walgArchiver struct {
	stage string
}

func startWALGArchiver(t *testing.T, repo repository, st storage.Storage, o walgtest.Options) walgArchiver {
	t.Helper()
	a := walgArchiver{stage: testenv.ServerTempDir(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			des, err := os.ReadDir(a.stage)
			if err != nil {
				t.Errorf("read the staging folder: %v", err)
				return
			}
			for _, de := range des {
				if strings.HasPrefix(de.Name(), ".") {
					continue // being copied
				}
				p := filepath.Join(a.stage, de.Name())
				key, err := walgtest.PutWALFile(ctx, st, p, o)
				if err == nil && repo.dir != "" {
					// wal-g runs as the server's user: so do its files.
					err = ownAsFolder(repo.dir, key)
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("archive %s as wal-g: %v", de.Name(), err)
					}
					return
				}
				os.Remove(p)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

// ownAsFolder gives key's file, and the folders between it and dir, dir's
// owner and group.
func ownAsFolder(dir, key string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	p := dir
	for _, part := range strings.Split(key, "/") {
		p = filepath.Join(p, part)
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// archiveCommand copies a file into the staging folder whole (a temporary
// name, then a rename).
func (a walgArchiver) archiveCommand() string {
	return "cp %p " + a.stage + "/.tmp-%f && mv " + a.stage + "/.tmp-%f " + a.stage + "/%f"
}

// waitWALG waits until file is in st, in tusk's layout or wal-g's.
func waitWALG(t *testing.T, st storage.Storage, file string) {
	t.Helper()
	n, err := wal.ParseName(file)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, func() bool {
		_, err := archive.Stat(t.Context(), st, n)
		return err == nil
	})
}

// switchWAL ends the server's current segment and waits until wal-g's
// archiver has stored it.
func switchWAL(t *testing.T, pg *testenv.Postgres, sock string, port int, st storage.Storage) string {
	t.Helper()
	q := func(sql string) string {
		if sock == "" {
			return pg.SQL(t, sql)
		}
		return psql(t, pg, sock, port, sql)
	}
	seg := q("SELECT pg_walfile_name(pg_current_wal_lsn())")
	q("SELECT pg_switch_wal()")
	waitWALG(t, st, seg)
	return seg
}

const walgDataSum = `SELECT md5(string_agg(g::text || ':' || v, ',' ORDER BY g)) || '/' || count(*) FROM data`

// TestIntegrationWALGRestore: a PostgreSQL 15 cluster archives its WAL
// through wal-g's wal-push (lz4 into a folder; brotli into MinIO, encrypted
// with WALG_LIBSODIUM_KEY, and tusk's backup encrypted with the same key), a tusk
// base backup is taken meanwhile, and tusk restores it to points in time
// by replaying wal-g's WAL through tusk wal-fetch (and its prefetcher,
// whose use depends on timing here; archive's TestPrefetchWALG checks it):
// first to a restore point on timeline 1, promoting to timeline 2 whose
// history file and WAL wal-g archives too; then, from the same backup,
// across that switch to a restore point on timeline 2. Table checksums
// must be exactly those of each moment.
func TestIntegrationWALGRestore(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		codec := map[string]string{"folder": "lz4", "s3": "brotli"}[kind]
		t.Run(kind+"-"+codec, func(t *testing.T) {
			t.Parallel()
			st := repoStore(t, repo)
			o := walgtest.Options{Compression: codec}
			serverEnv := repo.env
			if kind == "s3" {
				o.LibsodiumKey = walgLibsodiumKey
				serverEnv = append([]string{"WALG_LIBSODIUM_KEY=" + walgLibsodiumKey}, repo.env...)
			}
			walg := startWALGArchiver(t, repo, st, o)
			pg := testenv.StartPostgres(t, testenv.PostgresOptions{ArchiveCommand: walg.archiveCommand()})
			env := append(append([]string{}, serverEnv...), pg.Env()...)

			pg.SQL(t, "CREATE TABLE data AS SELECT g, md5(g::text) AS v FROM generate_series(1, 100000) g")
			switchWAL(t, pg, "", 0, st)
			// tusk's backup while wal-g archives: backup-push waits for
			// its WAL in wal-g's layout.
			r := run(t, bin, env, "backup-push", pg.DataDir)
			wantExit(t, r, 0)
			backups := listBackups(t, bin, env)
			if len(backups) != 1 {
				t.Fatalf("%d backups listed, want 1", len(backups))
			}
			name := backups[0].Name

			pg.SQL(t, "UPDATE data SET v = md5(v) WHERE g % 3 = 0")
			want1 := pg.SQL(t, walgDataSum)
			pg.SQL(t, "SELECT pg_create_restore_point('walg_rp1')")
			pg.SQL(t, "UPDATE data SET v = 'after rp1' WHERE g % 5 = 0")
			last1 := switchWAL(t, pg, "", 0, st)
			pg.Stop(t)
			if keys := repo.keys(t); !containsPrefix(keys, archive.WALGPrefix+last1) || containsPrefix(keys, "wal/") {
				t.Fatalf("the WAL is not only in wal-g's layout: %v", keys)
			}

			// wal-show and wal-verify see wal-g's WAL as the archive.
			shown := decode[verify.Archive](t, run(t, bin, env, "wal-show", "--json"))
			if shown.WALG == 0 || len(shown.Timelines) != 1 || shown.Timelines[0].Segments < 3 {
				t.Fatalf("wal-show: %+v", shown)
			}
			wantExit(t, run(t, bin, env, "wal-verify", "--deep"), 0)

			// Restore 1: to walg_rp1, by hand, with wal-g archiving the
			// new timeline.
			walg2 := startWALGArchiver(t, repo, st, o)
			restored := testenv.NewPostgres(t, testenv.PostgresOptions{Env: serverEnv, ArchiveCommand: walg2.archiveCommand()})
			wantExit(t, run(t, bin, env, "backup-fetch", restored.DataDir, name, "--target-name", "walg_rp1", "--target-action", "promote"), 0)
			restored.Configure(t, nil)
			restored.Start(t)
			waitFor(t, 2*time.Minute, func() bool {
				out, err := restored.TrySQL(t.Context(), "SELECT pg_is_in_recovery()")
				return err == nil && out == "f"
			})
			if got := restored.SQL(t, walgDataSum); got != want1 {
				t.Fatalf("restored to walg_rp1: checksum %s, want %s\n%s", got, want1, restored.LogTail(40))
			}
			if tli := restored.SQL(t, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
				t.Fatalf("promoted to timeline %s, want 2", tli)
			}
			// Timeline 2, archived by wal-g.
			restored.SQL(t, "UPDATE data SET v = 'on timeline 2' WHERE g % 7 = 0")
			want2 := restored.SQL(t, walgDataSum)
			restored.SQL(t, "SELECT pg_create_restore_point('walg_rp2')")
			restored.SQL(t, "UPDATE data SET v = 'after rp2' WHERE g % 11 = 0")
			switchWAL(t, restored, "", 0, st)
			waitWALG(t, st, "00000002.history")
			restored.Stop(t)
			hist, err := walgtest.WALKey("00000002.history", codec)
			if err != nil {
				t.Fatal(err)
			}
			if keys := repo.keys(t); !containsPrefix(keys, hist) {
				t.Fatalf("the history file is not in wal-g's layout: %v", keys)
			}

			// Restore 2: from the same backup across the switch, with tusk
			// driving recovery.
			dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
			r = run(t, bin, env, "backup-fetch", dest, name, "--recover", "--json", "--target-name", "walg_rp2",
				"--target-timeline", "2", "--target-action", "promote")
			t.Cleanup(func() { stopServer(t, pg, dest) })
			wantExit(t, r, 0)
			if res := decode[tusk.FetchResult](t, r); res.Recovery == nil || res.Recovery.State != "promoted" {
				t.Fatalf("backup-fetch --recover: not promoted\n%s", r.stdout)
			}
			sock, port := recovered(t, r)
			if got := psql(t, pg, sock, port, walgDataSum); got != want2 {
				t.Fatalf("restored across the switch to walg_rp2: checksum %s, want %s", got, want2)
			}
			if tli := psql(t, pg, sock, port, "SELECT timeline_id FROM pg_control_checkpoint()"); tli != "3" {
				t.Fatalf("promoted to timeline %s, want 3", tli)
			}
			stopServer(t, pg, dest)
		})
	}
}

func containsPrefix(keys []string, prefix string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// TestIntegrationWALGFetch: wal-fetch of each codec wal-g writes, plain and
// encrypted, and every way it can fail: what the repository holds in a
// form tusk cannot read, or cannot decrypt, stops archive recovery (exit
// 200), and only a file that is not there at all is "not in the archive"
// (exit 1).
func TestIntegrationWALGFetch(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			st := repoStore(t, repo)
			pgdata := t.TempDir()
			if err := os.WriteFile(filepath.Join(pgdata, "recovery.signal"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Mkdir(filepath.Join(pgdata, "pg_wal"), 0o700)
			dest := filepath.Join(pgdata, "pg_wal", "RECOVERYXLOG")
			base := append([]string{"PGDATA=" + pgdata, "TUSK_WAL_PREFETCH=0"}, repo.env...)
			segAt := func(pos uint64) (string, []byte) {
				n := wal.SegmentAt(1, pos, 1<<20)
				b, err := os.ReadFile(fakeWAL(t, n.File, 1<<20))
				if err != nil {
					t.Fatal(err)
				}
				copy(b[4096:], n.File) // each segment its own
				return n.File, b
			}
			put := func(file string, b []byte, o walgtest.Options) {
				t.Helper()
				if _, err := walgtest.PutWAL(t.Context(), st, file, bytes.NewReader(b), o); err != nil {
					t.Fatal(err)
				}
			}
			fetch := func(file string, env []string, code int, says string) []byte {
				t.Helper()
				os.Remove(dest)
				r := run(t, bin, env, "wal-fetch", file, dest)
				wantExit(t, r, code)
				if says != "" && !strings.Contains(errorLine(t, r.stderr), says) {
					t.Fatalf("wal-fetch %s: %q does not say %q", file, errorLine(t, r.stderr), says)
				}
				if code != 0 {
					if _, err := os.Stat(dest); err == nil {
						t.Fatalf("wal-fetch %s exited %d and left %s", file, code, dest)
					}
					return nil
				}
				b, err := os.ReadFile(dest)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			withKey := append([]string{"WALG_LIBSODIUM_KEY=" + walgLibsodiumKey}, base...)
			pos := uint64(1)
			codecs := []string{"lz4", "zstd", "brotli", "lzma", "none"}
			if kind == "s3" {
				codecs = []string{"zstd"} // the folder covers the rest
			}
			for _, codec := range codecs {
				for _, key := range []string{"", walgLibsodiumKey} {
					file, b := segAt(pos)
					pos++
					put(file, b, walgtest.Options{Compression: codec, LibsodiumKey: key})
					env := base
					if key != "" {
						env = withKey
					}
					if got := fetch(file, env, 0, ""); !bytes.Equal(got, b) {
						t.Fatalf("%s (%s, key %v): fetched %d bytes, not the segment", file, codec, key != "", len(got))
					}
					if key == "" {
						continue
					}
					// The same key under tusk's own name for it.
					if got := fetch(file, append([]string{"TUSK_ENCRYPTION_KEY=" + walgLibsodiumKey}, base...), 0, ""); !bytes.Equal(got, b) {
						t.Fatalf("%s with TUSK_ENCRYPTION_KEY: fetched %d bytes", file, len(got))
					}
					// Without the key, or with another: never "not found".
					fetch(file, base, 200, "WALG_LIBSODIUM_KEY")
					fetch(file, append([]string{"WALG_LIBSODIUM_KEY=another key, also 32 bytes long"}, base...), 200, "cannot be decrypted")
				}
			}
			history := []byte("1\t0/3000000\tno recovery target specified\n")
			put("00000002.history", history, walgtest.Options{Compression: "zstd"})
			if got := fetch("00000002.history", base, 0, ""); !bytes.Equal(got, history) {
				t.Fatalf("00000002.history: fetched %q", got)
			}

			// What tusk cannot read.
			lzo, _ := segAt(pos)
			if err := st.Put(t.Context(), archive.WALGPrefix+lzo+".lzo", strings.NewReader("LZO")); err != nil {
				t.Fatal(err)
			}
			fetch(lzo, base, 200, "lzo, which tusk does not decode")
			unknown, _ := segAt(pos + 1)
			if err := st.Put(t.Context(), archive.WALGPrefix+unknown+".xz", strings.NewReader("xz")); err != nil {
				t.Fatal(err)
			}
			fetch(unknown, base, 200, "extension tusk does not know")
			short, b := segAt(pos + 2)
			put(short, b[:len(b)/2], walgtest.Options{})
			fetch(short, base, 200, "bytes long")

			// Truly missing: the end of the archive, during recovery too.
			missing, _ := segAt(pos + 10)
			fetch(missing, base, 1, "")
			fetch("00000003.history", base, 1, "")

			// Outside archive recovery what tusk cannot read still fails,
			// as an error (exit 1, which a standby takes as "ask again later").
			os.Remove(filepath.Join(pgdata, "recovery.signal"))
			r := run(t, bin, base, "wal-fetch", lzo, dest)
			if r.code == 0 || r.code == 200 || !strings.Contains(errorLine(t, r.stderr), "lzo") {
				t.Fatalf("outside recovery: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}
