// Package bench measures tusk against its peers on real PostgreSQL WAL and
// clusters: how fast a simulated archiver gets through a gigabyte of segments
// with each archive_command (BenchmarkWALPush), how long PostgreSQL takes to
// replay the same WAL from a base backup with each restore_command
// (BenchmarkWALReplay), base backups and restores of pgbench clusters at
// the scales of TUSK_BENCH_SCALES (default 100 and 400) against
// pg_basebackup, pgBackRest and, when TUSK_BENCH_WALG names a wal-g binary,
// wal-g (BenchmarkBackup), and
// PostgreSQL 17 incremental backups against full ones: stored bytes and time
// after 1% of the rows changed, and restoring a chain of a full backup and 6
// incrementals against restoring one full backup (BenchmarkIncremental).
//
// Run it with "make bench". Each benchmark measures once (use -benchtime 1x;
// b.N is ignored), reports its figures with b.ReportMetric, prints a summary
// and rewrites its own section of BENCHMARKS.md at the repository root.
//
// The WAL corpus (a base backup, the stopped cluster, and every segment
// written after the backup) is built once, which takes a few minutes, and
// cached under ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bench (or
// $TUSK_BENCH_CACHE); it is rebuilt when missing or incomplete.
//
// The package holds no Test* functions that need servers, so "make test"
// only compiles the benchmarks and runs the quick unit tests of the report
// and WAL-name helpers.
package bench
