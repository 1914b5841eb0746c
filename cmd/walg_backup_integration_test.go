package cmd_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tusk-backup/tusk/basebackup"
	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/internal/walgtest"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/storage/s3"
)

// walgStore opens repo as the generator writes into it.
func walgStore(t *testing.T, repo repository) storage.Storage {
	t.Helper()
	if repo.minio == nil {
		st, err := local.New(repo.dir)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	m := repo.minio
	st, err := s3.New(t.Context(), s3.Config{Bucket: m.Bucket, Prefix: "repo", Endpoint: m.Endpoint, ForcePathStyle: true,
		Region: m.Region, AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pushWALG takes a wal-g backup of pg (a delta on parent, if set) with the
// generator, between pg_backup_start and pg_backup_stop in one session,
// under a little pgbench load.
func pushWALG(t *testing.T, pg *testenv.Postgres, st storage.Storage, codec, parent string) string {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	c, err := compress.Parse(codec)
	if err != nil {
		t.Fatal(err)
	}
	o := walgtest.BackupOptions{DataDir: pg.DataDir, Codec: c, Parent: parent, TarSizeThreshold: 4 << 20}
	if err := conn.QueryRow(ctx, `SELECT timeline_id, (SELECT system_identifier FROM pg_control_system()),
		current_setting('server_version_num')::int FROM pg_control_checkpoint()`).Scan(&o.Timeline, &o.SystemID, &o.PgVersion); err != nil {
		t.Fatal(err)
	}
	load := pg.RunAsOwner(ctx, filepath.Join(pg.BinDir, "pgbench"), "-T", "3", "-c", "2", "-n")
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer load.Wait()
	if err := conn.QueryRow(ctx, "SELECT pg_backup_start('walg-test', true) - '0/0'::pg_lsn").Scan(&o.StartLSN); err != nil {
		t.Fatal(err)
	}
	o.Stop = func(ctx context.Context) (walgtest.Stopped, error) {
		var s walgtest.Stopped
		err := conn.QueryRow(ctx, "SELECT labelfile, spcmapfile, lsn - '0/0'::pg_lsn FROM pg_backup_stop(true)").Scan(&s.Label, &s.TablespaceMap, &s.FinishLSN)
		return s, err
	}
	name, err := walgtest.PushBackup(ctx, st, o)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestIntegrationWALGBackups: a cluster under load with a tablespace, a
// tusk backup, then a wal-g full backup (lz4) and a delta on it (zstd)
// written in wal-g's format; tusk lists all three, says which is whose, and
// restores each wal-g backup exactly to a moment after it (backup-fetch
// --recover to a target LSN, by name and as LATEST), and each restored
// cluster starts and promotes; once two tusk backups are newer, delete
// retain FULL 2 deletes the wal-g backups and all their objects. The WAL
// stays in tusk's archive (the cluster archives with tusk wal-push).
func TestIntegrationWALGBackups(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, repo, testenv.PostgresOptions{})
			pg, env := c.pg, c.env
			tsDir := testenv.ServerTempDir(t)
			pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+tsDir+"'")
			pg.SQL(t, "CREATE TABLE in_tablespace TABLESPACE ts AS SELECT g AS n FROM generate_series(1, 50000) g")
			pg.SQL(t, "CREATE TABLE marks (n int)")
			pgbench(t, pg, "-i", "-s", "2", "-q")
			wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)

			st := walgStore(t, repo)
			moment := func(i int) point {
				pgbench(t, pg, "-t", "200", "-c", "2", "-n")
				pg.SQL(t, "INSERT INTO marks VALUES ("+strconv.Itoa(i)+"); INSERT INTO in_tablespace SELECT g FROM generate_series(1, "+strconv.Itoa(100*i)+") g")
				return point{sum: pg.SQL(t, dataSum), lsn: pg.SQL(t, "SELECT pg_current_wal_lsn()")}
			}
			full := pushWALG(t, pg, st, "lz4", "")
			afterFull := moment(1)
			delta := pushWALG(t, pg, st, "zstd", full)
			afterDelta := moment(2)
			moment(3)
			archiveWAL(t, pg)

			metas := listBackups(t, bin, env)
			if len(metas) != 3 || metas[1].Name != full || metas[2].Name != delta {
				t.Fatalf("backup-list --json: %v, want a tusk backup, %s and %s", names(metas), full, delta)
			}
			if metas[0].Origin != "" || metas[1].Origin != basebackup.OriginWALG || metas[2].Origin != basebackup.OriginWALG ||
				metas[2].Parent != full || metas[1].Codec != "lz4" || metas[2].Codec != "zstd" {
				t.Fatalf("backup-list --json: %+v", metas)
			}
			r := run(t, bin, env, "backup-list")
			wantExit(t, r, 0)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != 4 || !strings.HasSuffix(lines[0], "origin") || !strings.HasSuffix(lines[1], "tusk") ||
				!strings.HasSuffix(lines[2], "wal-g") || !strings.HasSuffix(lines[3], "wal-g") {
				t.Fatalf("backup-list:\n%s", r.stdout)
			}

			// verify reads all three, the delta with its chain, and their WAL.
			r = run(t, bin, env, "verify", "--all", "--json")
			wantExit(t, r, 0)
			if vs := decode[[]tusk.VerifyResult](t, r); len(vs) != 3 || vs[2].Backup != delta || !slices.Equal(vs[2].Chain, []string{full}) || !vs[2].OK {
				t.Fatalf("verify --all --json: %s", r.stdout)
			}

			for _, c := range []struct {
				name, backup, chosen string
				at                   point
			}{
				{"full", full, full, afterFull},
				{"delta", "LATEST", delta, afterDelta},
			} {
				dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
				ts := filepath.Join(testenv.ServerTempDir(t), "ts")
				r := run(t, bin, env, "backup-fetch", dest, c.backup, "--recover", "--json", "--target-action", "promote", "--target-timeline", "current",
					"--target-lsn", c.at.lsn, "--tablespace-mapping", tsDir+"="+ts)
				t.Cleanup(func() { stopServer(t, pg, dest) })
				wantExit(t, r, 0)
				res := decode[tusk.FetchResult](t, r)
				if res.Backup != c.chosen || res.Recovery == nil || res.Recovery.State != "promoted" {
					t.Fatalf("%s: backup-fetch --json: %s", c.name, r.stdout)
				}
				sock, port := recovered(t, r)
				if got := psql(t, pg, sock, port, dataSum); got != c.at.sum {
					t.Fatalf("%s: restored data checksum %s, want %s (the moment recorded)", c.name, got, c.at.sum)
				}
				if got := psql(t, pg, sock, port, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"); got != ts {
					t.Fatalf("%s: tablespace at %s, want %s", c.name, got, ts)
				}
				stopServer(t, pg, dest)
			}

			// A drill of the delta: restored, replayed, checked.
			r = run(t, bin, env, "restore-drill", delta, "--scratch", testenv.ServerTempDir(t), "--sql", "SELECT 1 FROM marks WHERE n = 2")
			wantExit(t, r, 0)

			// Once tusk's own backups are newer, retention ages the wal-g
			// backups out with every object of theirs.
			wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
			wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
			r = run(t, bin, env, "delete", "retain", "FULL", "2", "--confirm")
			wantExit(t, r, 0)
			left := listBackups(t, bin, env)
			if len(left) != 2 || left[0].Origin != "" || left[1].Origin != "" {
				t.Fatalf("after delete retain FULL 2: %v\n%s", names(left), r.stdout)
			}
			for _, k := range repo.keys(t) {
				if strings.HasPrefix(k, "basebackups_005/") {
					t.Fatalf("after delete retain FULL 2: %s left", k)
				}
			}
		})
	}
}
