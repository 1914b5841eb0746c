package bench

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// BenchmarkWALPush archives the corpus once with each archive_command (see
// pushReport.render for what is measured) and reports segments per second
// for each, and tusk's throughput over pgBackRest's asynchronous
// archive-push's. b.N is ignored: run it with -benchtime 1x.
func BenchmarkWALPush(b *testing.B) {
	c := loadCorpus(b)
	pgbackrest, pgbackrestVersion := requirePgBackRest(b)
	tusk := buildTusk(b)
	minio := testenv.StartMinIO(b)
	// pgBackRest 2.45 speaks S3 only over HTTPS: a second MinIO serves it,
	// and tusk is measured against the same server too.
	var minioTLS *testenv.MinIO
	if selected("pgbackrest-async-lz4-minio") || selected("tusk-minio-https") {
		minioTLS = testenv.StartMinIOTLS(b)
	}
	site := newArchiveSite(b, c)
	site.warm(b)
	b.ResetTimer()

	var runs []pushRun
	// finish records a run, and flushes what it wrote so that the next run
	// does not pay for its writeback.
	finish := func(r pushRun, metric, shown string) {
		r.Metric, r.Command = metric, shown
		runs = append(runs, r)
		syscall.Sync()
		b.Logf("%-40s %6.2f s %7.1f segments/s", r.Label, r.Elapsed.Seconds(), r.rate())
	}

	if selected("noop") {
		r := site.archiveAll(b, "no-op", "true", nil)
		finish(r, "noop", "true")
	}
	if selected("cp") {
		finish(pushCp(b, site, c))
	}

	for _, v := range []struct {
		label, metric string
		opts          pgbackrestOptions
	}{
		{"pgBackRest sync (lz4)", "pgbackrest-sync-lz4", pgbackrestOptions{Compress: "lz4"}},
		{"pgBackRest async (lz4)", "pgbackrest-async-lz4", pgbackrestOptions{Async: true, Compress: "lz4"}},
		{"pgBackRest sync (gz, its default)", "pgbackrest-sync-gz", pgbackrestOptions{Compress: "gz"}},
		{"pgBackRest async (gz)", "pgbackrest-async-gz", pgbackrestOptions{Async: true, Compress: "gz"}},
		{"pgBackRest async (lz4, MinIO over HTTPS)", "pgbackrest-async-lz4-minio", pgbackrestOptions{Async: true, Compress: "lz4", S3: minioTLS, Prefix: "pgbackrest-push"}},
	} {
		if !selected(v.metric) {
			continue
		}
		repo := newPgBackRestRepo(b, pgbackrest, site, v.opts)
		r := site.archiveAll(b, v.label, repo.command, nil)
		repo.settle(b)
		if missing := missingSegments(c.Segments, repo.archived(b)); len(missing) > 0 {
			b.Fatalf("%s: %d segments missing from the repository, e.g. %s", v.label, len(missing), missing[0])
		}
		r.RepoBytes = repo.size(b)
		repo.remove(b)
		finish(r, v.metric, "pgbackrest --config=$CONF --stanza=bench archive-push %p` with `"+v.opts.String())
	}

	tuskCommand := tusk + " wal-push %p"
	for _, v := range []struct {
		label, metric, shown string
		repo                 func() *tuskRepo
	}{
		{"tusk (folder)", "tusk-folder", "TUSK_REPO=file://$REPO tusk wal-push %p",
			func() *tuskRepo { return newTuskFolderRepo(b) }},
		{"tusk (MinIO)", "tusk-minio", "TUSK_REPO=s3://BUCKET/push/ AWS_ENDPOINT=http://127.0.0.1:PORT tusk wal-push %p",
			func() *tuskRepo { return newTuskMinIORepo(b, minio, "push/") }},
		{"tusk (MinIO over HTTPS)", "tusk-minio-https", "TUSK_REPO=s3://BUCKET/push/ AWS_ENDPOINT=https://127.0.0.1:PORT AWS_CA_BUNDLE=$CA tusk wal-push %p",
			func() *tuskRepo { return newTuskMinIORepo(b, minioTLS, "push/") }},
		// PostgreSQL calls for every segment; push-ahead records instead of
		// marking .done (what monitoring of pg_stat_archiver needs).
		{"tusk (folder, one call per segment)", "tusk-folder-records", "TUSK_REPO=file://$REPO TUSK_PG_READY_RENAME=false tusk wal-push %p",
			func() *tuskRepo {
				r := newTuskFolderRepo(b)
				r.env = append(r.env, "TUSK_PG_READY_RENAME=false")
				return r
			}},
		{"tusk (MinIO, one call per segment)", "tusk-minio-records", "TUSK_REPO=s3://BUCKET/push-records/ AWS_ENDPOINT=http://127.0.0.1:PORT TUSK_PG_READY_RENAME=false tusk wal-push %p",
			func() *tuskRepo {
				r := newTuskMinIORepo(b, minio, "push-records/")
				r.env = append(r.env, "TUSK_PG_READY_RENAME=false")
				return r
			}},
	} {
		if !selected(v.metric) {
			continue
		}
		repo := v.repo()
		r := site.archiveAll(b, v.label, tuskCommand, repo.env)
		r.RepoBytes = repo.verify(b, tusk, site, c)
		finish(r, v.metric, v.shown)
	}
	b.StopTimer()

	report := pushReport{
		Machine:  machineFacts(b, pgbackrestVersion),
		Corpus:   c.facts(),
		Runs:     runs,
		Baseline: "pgbackrest-async-lz4",
		Notes: []string{
			"pgBackRest: a posix repository in a scratch folder, stanza created with `stanza-create --no-online`, " +
				"`pg1-path` = the data directory, `log-level-file=off`; async adds `archive-async=y`, `process-max=2` " +
				"and `spool-path`. pgBackRest 2.45 speaks S3 only over HTTPS (plain HTTP came in 2.58), so its S3 run " +
				"goes to a second MinIO on the same machine serving HTTPS with a self-signed certificate (`repo1-storage-ca-file`), " +
				"and tusk is run against that server too (`AWS_CA_BUNDLE`): that pair is the like-for-like S3 comparison.",
			"tusk: default codec, `TUSK_SPOOL_DIR` a fresh scratch folder; push-ahead and upload concurrency " +
				"are at their defaults.",
			"no-op is the harness's floor: starting `sh` as user postgres, as PostgreSQL's archiver does.",
			"cp neither compresses nor fsyncs, so its copies are not durable when it exits 0; tusk and pgBackRest fsync.",
			"Calls: how many times the archiver started the command. tusk's push-ahead marks the later segments " +
				"it has stored `.done` itself, so the archiver skips them; pgBackRest's async queue instead answers " +
				"each call from its spool. Median and slowest are over the calls; the slowest are those that wait " +
				"for a batch of later segments to be stored.",
			"Repository: bytes stored (for pgBackRest, its archive folder; for MinIO, the objects' sizes).",
		},
	}
	for _, pair := range [][2]string{
		{"tusk-minio-https", "pgbackrest-async-lz4-minio"},
		{"tusk-folder", "pgbackrest-async-lz4"},
		{"tusk-folder-records", "pgbackrest-async-lz4"},
		{"tusk-minio-records", "pgbackrest-async-lz4"},
		{"tusk-minio", "pgbackrest-async-lz4"},
		{"tusk-folder", "pgbackrest-async-gz"},
		{"tusk-minio", "pgbackrest-async-gz"},
	} {
		num, ok1 := findRun(runs, pair[0])
		den, ok2 := findRun(runs, pair[1])
		if !ok1 || !ok2 {
			continue
		}
		report.Ratios = append(report.Ratios, ratio{
			Label:  num.Label + " ÷ " + den.Label + ", segments/s",
			Metric: "x-" + pair[0] + "/" + pair[1],
			Value:  num.rate() / den.rate(),
		})
	}
	for _, r := range runs {
		b.ReportMetric(r.rate(), strings.ReplaceAll(r.Metric, " ", "-")+"-seg/s")
	}
	for _, r := range report.Ratios {
		b.ReportMetric(r.Value, r.Metric)
	}
	publish(b, "wal-push", report.render())
}

// pushCp archives the corpus with cp into a scratch folder.
func pushCp(b *testing.B, site *archiveSite, c *corpus) (pushRun, string, string) {
	cpRepo := testenv.ServerTempDir(b)
	r := site.archiveAll(b, "cp", fmt.Sprintf("test ! -f %s/%%f && cp %%p %s/%%f", cpRepo, cpRepo), nil)
	names, err := treeNames(cpRepo)
	if err != nil {
		b.Fatal(err)
	}
	if missing := missingSegments(c.Segments, names); len(missing) > 0 {
		b.Fatalf("cp: %d segments missing, e.g. %s", len(missing), missing[0])
	}
	if r.RepoBytes, err = treeSize(cpRepo); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(cpRepo); err != nil {
		b.Fatal(err)
	}
	return r, "cp", "test ! -f $REPO/%f && cp %p $REPO/%f"
}
