package cmd_test

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/verify"
)

// walSegments picks the WAL segment files (no history files) out of keys.
func walSegments(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, "wal/") && !strings.HasPrefix(k, "wal/timelines/") {
			out = append(out, k[strings.LastIndexByte(k, '/')+1:])
		}
	}
	return out
}

// position drops the timeline from a WAL file name.
func position(name string) string { return name[8:24] }

// TestIntegrationRetention is the operator's cron job: ten backups with
// archiving and load between them; delete retain FULL 7 as a dry run changes
// nothing; with --confirm seven (and a permanent one) remain; delete garbage
// removes exactly the WAL before the oldest kept backup (except a permanent
// backup's); the oldest kept backup restores to a moment between two kept
// backups and to the newest archived point. Bad input deletes nothing.
func TestIntegrationRetention(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, repo, testenv.PostgresOptions{})
			pg, env := c.pg, c.env
			pg.SQL(t, "CREATE TABLE marks (n int)")
			pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+testenv.ServerTempDir(t)+"'")
			pg.SQL(t, "CREATE TABLE in_tablespace TABLESPACE ts AS SELECT 1 AS n")
			pgbench(t, pg, "-i", "-s", "1", "-q")

			var between point // a moment between the 5th and 6th backups
			for i := 1; i <= 10; i++ {
				pgbench(t, pg, "-t", "100", "-c", "2", "-n")
				pg.SQL(t, "INSERT INTO marks VALUES ("+strconv.Itoa(i)+")")
				wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
				if i == 5 {
					pgbench(t, pg, "-t", "100", "-c", "2", "-n")
					pg.SQL(t, "INSERT INTO marks VALUES (55)")
					between.sum = pg.SQL(t, dataSum)
					time.Sleep(20 * time.Millisecond)
					between.time = pg.SQL(t, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
					time.Sleep(20 * time.Millisecond)
				}
			}
			pgbench(t, pg, "-t", "100", "-c", "2", "-n")
			pg.SQL(t, "INSERT INTO marks VALUES (99)")
			final := pg.SQL(t, dataSum)
			archiveWAL(t, pg)

			all := listBackups(t, bin, env)
			if len(all) != 10 {
				t.Fatalf("%d backups, want 10", len(all))
			}
			perm := all[1]
			wantExit(t, run(t, bin, env, "backup-mark", perm.Name), 0)

			// Dry runs and bad input change nothing.
			before := repo.keys(t)
			for _, args := range [][]string{
				{"delete", "retain", "FULL", "7"},
				{"delete", "retain", "1", "--retain-window", "1d"},
				{"delete", "garbage"},
				{"delete", "everything", "FORCE"},
				{"delete", "before", all[5].Name},
				{"delete", "target", all[0].Name, "--json"},
			} {
				if r := run(t, bin, env, args...); r.code != 0 || !strings.Contains(r.stdout, "dry") {
					t.Fatalf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
				}
			}
			for _, args := range [][]string{
				{"delete", "retain", "0", "--confirm"},
				{"delete", "retain", "-1", "--confirm"},
				{"delete", "retain", "FULL", "seven", "--confirm"},
				{"delete", "before", "base_000000010000000000000099_20200101T000000Z", "--confirm"},
				{"delete", "before", "2026-13-45T99:00:00Z", "--confirm"},
				{"delete", "target", perm.Name, "--confirm"},
				{"delete", "everything", "--confirm"},
				{"delete", "sometimes", "--confirm"},
				{"delete", "retain", "FULL", "7", "--retain-window", "forever", "--confirm"},
			} {
				r := run(t, bin, env, args...)
				if r.code == 0 {
					t.Fatalf("%v: exit 0", args)
				}
				t.Logf("%v: exit %d: %s", args, r.code, errorLine(t, r.stderr))
			}
			if got := repo.keys(t); !slices.Equal(got, before) {
				t.Fatalf("a dry run or bad input changed the repository")
			}
			r := run(t, bin, env, "delete", "retain", "1", "--retain-window", "1d", "--json")
			plan := decode[tusk.PlanOutput](t, r)
			if len(plan.Backups) != 10 {
				t.Fatalf("retain --json: %d backups, want 10\n%s", len(plan.Backups), r.stdout)
			}
			for _, b := range plan.Backups {
				if b.Action != "keep" {
					t.Fatalf("retain 1 --retain-window 1d would delete %s, made minutes ago", b.Name)
				}
			}

			// The cron job. retain deletes the WAL of the backups it deletes,
			// as wal-g's does; garbage then finds nothing more to delete.
			walBefore := walSegments(repo.keys(t))
			wantExit(t, run(t, bin, env, "delete", "retain", "FULL", "7", "--confirm"), 0)
			kept := listBackups(t, bin, env)
			want := append([]string{perm.Name}, names(all[3:])...)
			if !slices.Equal(names(kept), want) {
				t.Fatalf("after retain 7: %v, want %v", names(kept), want)
			}
			wantExit(t, run(t, bin, env, "delete", "garbage", "--confirm"), 0)
			oldest := all[3]
			var wantWAL []string
			for _, w := range walBefore {
				p := position(w[:24])
				if p >= position(oldest.StartWAL) || (p >= position(perm.StartWAL) && p <= position(perm.EndWAL)) {
					wantWAL = append(wantWAL, w)
				}
			}
			keys := repo.keys(t)
			if got := walSegments(keys); !slices.Equal(got, wantWAL) {
				t.Fatalf("after garbage the archive holds\n%v\nwant\n%v", got, wantWAL)
			}
			if len(wantWAL) == len(walBefore) {
				t.Fatal("garbage deleted no WAL")
			}
			for _, k := range keys {
				if strings.HasPrefix(k, "backups/") && !slices.ContainsFunc(kept, func(b basebackup.Meta) bool {
					return strings.HasPrefix(k, "backups/"+b.Name+"/") || k == "backups/"+b.Name+".json"
				}) {
					t.Fatalf("object %s of a deleted backup is still there", k)
				}
			}

			// The oldest kept backup restores to a moment between two kept
			// backups and to the newest archived point.
			for _, target := range []struct {
				args []string
				want string
			}{
				{[]string{"--target-time", between.time}, between.sum},
				{nil, final},
			} {
				dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
				restoreAndCheck(t, pg, bin, env, dest, oldest.Name, target.args, target.want)
			}

			// Permanent no more: the next retain deletes it, and garbage its WAL.
			wantExit(t, run(t, bin, env, "backup-mark", perm.Name, "--impermanent"), 0)
			wantExit(t, run(t, bin, env, "delete", "retain", "FULL", "7", "--confirm"), 0)
			if got := names(listBackups(t, bin, env)); !slices.Equal(got, names(all[3:])) {
				t.Fatalf("after retain 7 without the permanent mark: %v", got)
			}
			run(t, bin, env, "delete", "garbage", "--confirm")
			for _, w := range walSegments(repo.keys(t)) {
				if position(w[:24]) < position(oldest.StartWAL) {
					t.Fatalf("garbage left %s, before the oldest backup's start %s", w, oldest.StartWAL)
				}
			}
		})
	}
}

// restoreAndCheck restores backup name into dest with --recover, shuts the
// server down at the target, starts it to compare the data checksum.
func restoreAndCheck(t *testing.T, pg *testenv.Postgres, bin string, env []string, dest, name string, target []string, want string) {
	t.Helper()
	ts := filepath.Join(testenv.ServerTempDir(t), "ts")
	tsOld := pg.SQL(t, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'")
	args := []string{"backup-fetch", dest, name, "--recover", "--json", "--tablespace-mapping", tsOld + "=" + ts}
	if target != nil {
		args = append(append(args, "--target-action", "promote", "--target-timeline", "current"), target...)
	}
	r := run(t, bin, env, args...)
	t.Cleanup(func() { stopServer(t, pg, dest) })
	wantExit(t, r, 0)
	sock, port := recovered(t, r)
	if got := psql(t, pg, sock, port, dataSum); got != want {
		t.Fatalf("restore %s %v: checksum %s, want %s", name, target, got, want)
	}
	stopServer(t, pg, dest)
}

// TestIntegrationRetentionLineagesAndKill: a second cluster (a different
// system identifier, its WAL continuing after the first's as after
// pg_upgrade) shares the prefix; retain counts each cluster's backups on its
// own and before NAME deletes only within NAME's cluster. A confirmed delete
// killed with SIGKILL at random moments never leaves a listed backup with a
// missing part, a re-run finishes the job, and every listed backup restores.
func TestIntegrationRetentionLineagesAndKill(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := s3Repo(t)
	// Many parts: deletes take long enough to be killed midway.
	ca := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=1MiB"}})
	a, envA := ca.pg, ca.env
	env := a.ServerEnv()
	pgbench(t, a, "-i", "-s", "1", "-q")
	pushN := func(pg *testenv.Postgres, env []string, n int) {
		for range n {
			pgbench(t, pg, "-t", "50", "-c", "2", "-n")
			wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
		}
	}
	pushN(a, envA, 4)
	next := a.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	a.Stop(t)

	// Cluster B: a new initdb whose WAL starts after A's, like pg_upgrade's.
	b := testenv.NewPostgres(t, testenv.PostgresOptions{ArchiveCommand: bin + " wal-push %p", Env: env})
	b.InitDB(t)
	resetTo := "00000001" + next[8:16] + "000000F0"
	if out, err := b.RunAsOwner(t.Context(), filepath.Join(b.BinDir, "pg_resetwal"), "-l", resetTo, b.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("pg_resetwal: %v\n%s", err, out)
	}
	b.Start(t)
	envB := append(env, b.Env()...)
	pgbench(t, b, "-i", "-s", "1", "-q")
	pushN(b, envB, 3)

	all := listBackups(t, bin, env)
	if len(all) != 7 || all[0].SystemID == all[6].SystemID {
		t.Fatalf("backups %v", names(all))
	}
	wantExit(t, run(t, bin, env, "delete", "before", all[5].Name, "--confirm"), 0)
	if got, want := names(listBackups(t, bin, env)), append(names(all[:4]), names(all[5:])...); !slices.Equal(got, want) {
		t.Fatalf("delete before %s (cluster B) left %v, want %v", all[5].Name, got, want)
	}

	// retain 1, killed at random moments, then run to the end.
	kills, midway := 0, 0
	for i := 0; i < 20; i++ {
		cmd := tuskCommand(t.Context(), bin, env, "delete", "retain", "1", "--confirm")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			kills++
		}
		keys := repo.keys(t)
		if slices.ContainsFunc(keys, func(k string) bool { return strings.HasSuffix(k, ".deleting") }) {
			midway++
		}
		for _, bk := range listBackups(t, bin, env) {
			for _, p := range bk.Parts {
				if !slices.Contains(keys, p.Key) {
					t.Fatalf("after a kill, listed backup %s misses part %s", bk.Name, p.Key)
				}
			}
		}
		if err == nil {
			break
		}
	}
	t.Logf("%d runs killed, %d of them in the middle of deleting", kills, midway)
	wantExit(t, run(t, bin, env, "delete", "retain", "1", "--confirm"), 0)
	left := listBackups(t, bin, env)
	if got, want := names(left), []string{all[3].Name, all[6].Name}; !slices.Equal(got, want) {
		t.Fatalf("retain 1 of each cluster left %v, want %v", got, want)
	}
	for _, k := range repo.keys(t) {
		if strings.HasSuffix(k, ".deleting") {
			t.Fatalf("tombstone %s left after a finished delete", k)
		}
	}
	wantExit(t, run(t, bin, env, "delete", "garbage", "--confirm", "--leftover-age", "0s"), 0)
	for _, bk := range left {
		dest := filepath.Join(testenv.ServerTempDir(t), "restore")
		wantExit(t, run(t, bin, env, "backup-fetch", dest, bk.Name), 0)
	}
	// Cluster A's last backup still recovers to its end: its WAL survived B's garbage.
	dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	b.Stop(t)
	wantExit(t, run(t, bin, env, "backup-fetch", dest, all[3].Name, "--recover", "--target-action", "shutdown", "--target-immediate"), 0)
}

// waitWALStored waits until the repository (tusk's own listing, not
// pg_stat_archiver, which push-ahead bypasses) holds every segment of
// timeline 1 from its first through last, with no gap.
func waitWALStored(t *testing.T, bin string, env []string, last string) {
	t.Helper()
	waitWALShows(t, bin, env, "timeline 1 through "+last+" without a gap", func(a verify.Archive) bool {
		if len(a.Timelines) == 0 {
			return false
		}
		tl := a.Timelines[0]
		return tl.ID == 1 && len(tl.Ranges) == 1 && tl.Ranges[0].Last >= last
	})
}

// walVerify runs wal-verify --json with args and decodes its verdict,
// whatever its exit code.
func walVerify(t *testing.T, bin string, env []string, args ...string) (verify.Result, string, int) {
	t.Helper()
	r := run(t, bin, env, append([]string{"wal-verify", "--json"}, args...)...)
	return decode[verify.Result](t, r), r.stderr, r.code
}

// TestIntegrationRetentionPermanentGaps: retention and wal-verify agree on
// what the archive must hold. With a permanent backup and three more, delete
// target + delete garbage and then delete before remove the WAL between the
// permanent backup's end and the next kept backup's start; wal-verify reports
// that as an expected gap between the two (exit 0), not as lost. wal-verify
// --deep reads every needed segment: a bit-flipped object passes the
// presence check (which says it is one) and fails the content check, which
// names it. Finally delete everything FORCE deletes the permanent backup and
// all WAL, and exits 0.
func TestIntegrationRetentionPermanentGaps(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	dir := repo.dir
	c := startCluster(t, repo, testenv.PostgresOptions{})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "1", "-q")
	for i, args := range [][]string{{"--permanent"}, nil, nil, nil} {
		if i > 0 {
			for range 2 {
				pgbench(t, pg, "-t", "100", "-c", "2", "-n")
				pg.SQL(t, "SELECT pg_switch_wal()")
			}
		}
		wantExit(t, run(t, bin, env, append([]string{"backup-push", pg.DataDir}, args...)...), 0)
	}
	pgbench(t, pg, "-t", "100", "-c", "2", "-n")
	last := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	waitWALStored(t, bin, env, last)
	pg.Stop(t) // nothing more is archived while the archive is checked
	all := listBackups(t, bin, env)
	if len(all) != 4 || !all[0].Permanent {
		t.Fatalf("backups %+v", all)
	}
	perm := all[0]
	if r, _, code := walVerify(t, bin, env); code != 0 || len(r.Expected) != 0 {
		t.Fatalf("wal-verify before any delete: exit %d, %+v", code, r)
	}

	// gapAfter checks that wal-verify passes and reports exactly the gap
	// from the permanent backup's end to next's start as expected.
	gapAfter := func(what string, next basebackup.Meta) {
		t.Helper()
		r, stderr, code := walVerify(t, bin, env)
		if code != 0 || !r.OK || len(r.Missing) != 0 || r.Check != "presence" {
			t.Fatalf("wal-verify after %s: exit %d, %+v\n%s", what, code, r, stderr)
		}
		if len(r.Expected) != 1 || r.Expected[0].After != perm.Name || r.Expected[0].Before != next.Name ||
			position(r.Expected[0].First) <= position(perm.EndWAL) || position(r.Expected[0].Last) >= position(next.StartWAL) {
			t.Fatalf("wal-verify after %s: expected gaps %+v, want one between %s (%s) and %s (%s)", what, r.Expected, perm.Name, perm.EndWAL, next.Name, next.StartWAL)
		}
		out := run(t, bin, env, "wal-verify").stdout
		if !strings.Contains(out, "expected gap") || strings.Contains(out, "LOST") {
			t.Fatalf("wal-verify after %s:\n%s", what, out)
		}
		t.Logf("wal-verify after %s:\n%s", what, out)
	}
	for _, args := range [][]string{{"delete", "target", all[1].Name, "--confirm"}, {"delete", "garbage", "--confirm"}} {
		wantExit(t, run(t, bin, env, args...), 0)
	}
	gapAfter("delete target and delete garbage", all[2])
	wantExit(t, run(t, bin, env, "delete", "before", all[3].Name, "--confirm"), 0)
	gapAfter("delete before", all[3])

	// The content check: every needed segment is read.
	r, _, code := walVerify(t, bin, env, "--deep")
	if code != 0 || !r.OK || r.Check != "content" || r.Read != r.Checked || r.Read == 0 {
		t.Fatalf("wal-verify --deep: exit %d, %+v", code, r)
	}
	flipped := filepath.Join(dir, "wal", all[3].StartWAL[:16], all[3].StartWAL)
	data, err := os.ReadFile(flipped)
	if err != nil {
		t.Fatal(err)
	}
	damageWALObject(t, flipped)
	if r, _, code := walVerify(t, bin, env); code != 0 || r.Check != "presence" {
		t.Fatalf("wal-verify (presence) with a bit flipped: exit %d, %+v", code, r)
	}
	key := "wal/" + all[3].StartWAL[:16] + "/" + all[3].StartWAL
	r, stderr, code := walVerify(t, bin, env, "--deep")
	if code != 1 || r.OK || len(r.Corrupt) != 1 || r.Corrupt[0].Object != key {
		t.Fatalf("wal-verify --deep with %s bit-flipped: exit %d, %+v\n%s", key, code, r, stderr)
	}
	t.Logf("wal-verify --deep: %s", errorLine(t, stderr))
	deep := run(t, bin, env, "wal-verify", "--deep")
	if deep.code != 1 || !strings.Contains(deep.stdout, key) || !strings.Contains(deep.stdout, "check: content") {
		t.Fatalf("wal-verify --deep with %s bit-flipped: exit %d\n%s", key, deep.code, deep.stdout)
	}
	t.Logf("wal-verify --deep:\n%s", deep.stdout)
	if err := os.WriteFile(flipped, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// everything FORCE: the permanent backup and all WAL go.
	everything := run(t, bin, env, "delete", "everything", "FORCE", "--confirm")
	wantExit(t, everything, 0)
	out := everything.stdout
	t.Logf("delete everything FORCE --confirm:\n%s", out)
	if left := listBackups(t, bin, env); len(left) != 0 {
		t.Fatalf("delete everything FORCE left backups %v\n%s", names(left), out)
	}
	var objects []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			if strings.HasPrefix(rel, "wal"+string(filepath.Separator)) || strings.HasPrefix(rel, "backups"+string(filepath.Separator)) {
				objects = append(objects, rel)
			}
		}
		return nil
	})
	if len(objects) != 0 {
		t.Fatalf("delete everything FORCE left %d objects, e.g. %s\n%s", len(objects), objects[0], out)
	}
}
