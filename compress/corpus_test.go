package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmarks run on real PostgreSQL 15 files: full WAL segments written
// by a pgbench run and the largest relation files it leaves. They are made on
// first use by a throwaway cluster and cached in
// ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/corpus/<corpusVersion>, or read from
// $TUSK_BENCH_CORPUS (a directory with wal/ and table/ in it) when set.
// Nothing is committed: the corpus is a few hundred MB.

// corpusVersion names the cache directory; change it with the recipe.
const corpusVersion = "pg15-pgbench-s20-v2"

const (
	corpusWALSegments = 8
	corpusTableFiles  = 3
	walSegmentSize    = 16 << 20
)

type corpusFile struct {
	name string
	data []byte
}

type corpus struct {
	wal   []corpusFile // whole 16 MiB segments
	table []corpusFile // relation files (heap and index segments)
}

var (
	corpusOnce sync.Once
	corpusData *corpus
	corpusSkip string // why this machine cannot make a corpus
	corpusErr  error
)

// loadCorpus returns the corpus, making it if needed, or skips b when
// PostgreSQL 15 is not installed.
func loadCorpus(b *testing.B) *corpus {
	b.Helper()
	corpusOnce.Do(func() { corpusData, corpusSkip, corpusErr = openCorpus() })
	if corpusSkip != "" {
		b.Skip(corpusSkip)
	}
	if corpusErr != nil {
		b.Fatal(corpusErr)
	}
	return corpusData
}

func openCorpus() (*corpus, string, error) {
	dir := os.Getenv("TUSK_BENCH_CORPUS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, "no cache directory for the benchmark corpus and TUSK_BENCH_CORPUS unset: " + err.Error(), nil
		}
		dir = filepath.Join(cache, "tusk", "corpus", corpusVersion)
		if _, err := os.Stat(filepath.Join(dir, "complete")); errors.Is(err, fs.ErrNotExist) {
			if skip, err := generateCorpus(dir); skip != "" || err != nil {
				return nil, skip, err
			}
		}
	}
	var c corpus
	for _, part := range []struct {
		sub   string
		files *[]corpusFile
	}{{"wal", &c.wal}, {"table", &c.table}} {
		entries, err := os.ReadDir(filepath.Join(dir, part.sub))
		if err != nil {
			return nil, "", fmt.Errorf("read corpus: %w", err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, part.sub, e.Name()))
			if err != nil {
				return nil, "", fmt.Errorf("read corpus: %w", err)
			}
			*part.files = append(*part.files, corpusFile{name: e.Name(), data: data})
		}
		if len(*part.files) == 0 {
			return nil, "", fmt.Errorf("read corpus: no files in %s", filepath.Join(dir, part.sub))
		}
	}
	return &c, "", nil
}

// pgCluster runs PostgreSQL's programs on a throwaway cluster as the user
// that may run them.
type pgCluster struct {
	bin, work, data string
	port            int
	cred            *syscall.Credential // nil unless we are root
}

func (pg *pgCluster) run(timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.Dir = pg.work
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGHOST="+pg.work, "PGPORT="+strconv.Itoa(pg.port),
		"PGUSER=postgres", "PGDATABASE=postgres", "HOME="+pg.work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return out.String(), nil
}

func (pg *pgCluster) sql(query string) (string, error) {
	out, err := pg.run(time.Minute, "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query)
	return strings.TrimSpace(out), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// generateCorpus makes the corpus in dir: initdb, pgbench -i -s 20, a
// checkpoint (so the run writes full-page images, as production does), pgbench
// runs with 4 clients until they have written 16 segments, then 8 of those
// segments spread over the run and the 3 largest relation files. It takes
// half a minute to a few minutes, depending on the machine and its load.
func generateCorpus(dir string) (skip string, err error) {
	bin := os.Getenv("TUSK_PG_BINDIR")
	if bin == "" {
		bin = "/usr/lib/postgresql/15/bin"
	}
	for _, tool := range []string{"initdb", "pg_ctl", "postgres", "pgbench", "psql"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			return fmt.Sprintf("PostgreSQL 15 %s not found in %s (apt-get install postgresql-15, or set TUSK_PG_BINDIR or TUSK_BENCH_CORPUS)", tool, bin), nil
		}
	}
	pg := &pgCluster{bin: bin}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return "running as root and no postgres user to run initdb as: " + err.Error(), nil
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if pg.port, err = freePort(); err != nil {
		return "", err
	}
	if pg.work, err = os.MkdirTemp("", "tusk-corpus-"); err != nil {
		return "", err
	}
	defer os.RemoveAll(pg.work)
	if err := os.Chown(pg.work, uid, gid); err != nil {
		return "", err
	}
	pg.data = filepath.Join(pg.work, "data")
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "corpus: "+format+"\n", args...)
	}
	logf("making the benchmark corpus in %s (up to a few minutes)", dir)

	if _, err := pg.run(5*time.Minute, "initdb", "-D", pg.data, "--data-checksums", "-A", "trust",
		"-U", "postgres", "--no-sync", "--encoding=UTF8", "--locale=C"); err != nil {
		return "", err
	}
	// Keep every segment of the run: no checkpoint before we copy them, as a
	// checkpoint recycles segments by renaming them. fsync and synchronous
	// commit off only change when WAL reaches the disk, not what it holds.
	conf := fmt.Sprintf(`
listen_addresses = ''
unix_socket_directories = '%s'
port = %d
max_wal_size = '16GB'
checkpoint_timeout = '1h'
fsync = off
synchronous_commit = off
`, pg.work, pg.port)
	if err := appendFile(filepath.Join(pg.data, "postgresql.conf"), conf); err != nil {
		return "", err
	}
	if _, err := pg.run(2*time.Minute, "pg_ctl", "-D", pg.data, "-l", filepath.Join(pg.work, "log"), "-w", "-t", "120", "start"); err != nil {
		return "", err
	}
	defer func() {
		_, _ = pg.run(2*time.Minute, "pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop")
	}()
	logf("pgbench -i -s 20")
	if _, err := pg.run(10*time.Minute, "pgbench", "-i", "-s", "20", "-q"); err != nil {
		return "", err
	}
	if _, err := pg.sql("CHECKPOINT"); err != nil {
		return "", err
	}
	first, err := pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
	if err != nil {
		return "", err
	}
	// Run until the run has written twice the segments we take, so that they
	// spread over it, whatever the machine's speed.
	var last string
	var run []string
	for round := 1; len(run) < 2*corpusWALSegments; round++ {
		if round > 8 {
			return "", fmt.Errorf("pgbench wrote only %d complete WAL segments (%s to %s) in %d rounds", len(run), first, last, round-1)
		}
		logf("pgbench -T 15 -c 4 -j 2, round %d", round)
		if _, err := pg.run(5*time.Minute, "pgbench", "-T", "15", "-c", "4", "-j", "2", "-n"); err != nil {
			return "", err
		}
		// A synchronous commit writes out all WAL before it.
		if _, err := pg.sql("SET synchronous_commit = on; CREATE TABLE IF NOT EXISTS tusk_corpus_flush ()"); err != nil {
			return "", err
		}
		if last, err = pg.sql("SELECT pg_walfile_name(pg_current_wal_lsn())"); err != nil {
			return "", err
		}
		// Segments strictly between the checkpoint's and the current one are
		// complete.
		entries, err := os.ReadDir(filepath.Join(pg.data, "pg_wal"))
		if err != nil {
			return "", err
		}
		run = run[:0]
		for _, e := range entries {
			if n := e.Name(); len(n) == 24 && n > first && n < last {
				run = append(run, n)
			}
		}
	}

	// Made beside dir and renamed into place when complete, so that a failed
	// or concurrent run leaves no half corpus behind.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, sub := range []string{"wal", "table"} {
		if err := os.MkdirAll(filepath.Join(tmp, sub), 0o755); err != nil {
			return "", err
		}
	}
	// Take corpusWALSegments spread evenly over the run: the first ones after
	// the checkpoint hold more full-page images than the later ones.
	logf("copying %d of the run's %d WAL segments", corpusWALSegments, len(run))
	for i := range corpusWALSegments {
		name := run[i*(len(run)-1)/(corpusWALSegments-1)]
		data, err := os.ReadFile(filepath.Join(pg.data, "pg_wal", name))
		if err != nil {
			return "", err
		}
		if err := checkSegment(name, data); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, "wal", name), data, 0o644); err != nil {
			return "", err
		}
	}

	// The table files, after a clean shutdown has written them out.
	if _, err := pg.run(2*time.Minute, "pg_ctl", "-D", pg.data, "-m", "fast", "-w", "stop"); err != nil {
		return "", err
	}
	type rel struct {
		path string
		size int64
	}
	var rels []rel
	err = filepath.WalkDir(filepath.Join(pg.data, "base"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rels = append(rels, rel{path, info.Size()})
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.SortFunc(rels, func(a, b rel) int { return int(b.size - a.size) })
	for _, r := range rels[:corpusTableFiles] {
		rp, _ := filepath.Rel(pg.data, r.path)
		name := strings.ReplaceAll(rp, string(filepath.Separator), "_")
		logf("copying %s (%d MB)", rp, r.size>>20)
		data, err := os.ReadFile(r.path)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, "table", name), data, 0o644); err != nil {
			return "", err
		}
	}

	about := fmt.Sprintf("PostgreSQL 15, pgbench -i -s 20, CHECKPOINT, pgbench -c 4 -j 2 -n\nWAL %s..%s, %d segments in the run\n", first, last, len(run))
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(about), 0o644); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return "", nil // another run finished first
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	return "", os.Rename(tmp, dir)
}

// checkSegment checks the long page header of a WAL segment: PostgreSQL 15's
// magic and the segment's own address, so a recycled file is not taken.
func checkSegment(name string, data []byte) error {
	if len(data) != walSegmentSize {
		return fmt.Errorf("WAL segment %s has %d bytes", name, len(data))
	}
	const xlpMagicPG15 = 0xD110
	logNo, err1 := strconv.ParseUint(name[8:16], 16, 32)
	segNo, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("WAL segment name %s: %w", name, err)
	}
	want := logNo<<32 | segNo*walSegmentSize
	magic := binary.LittleEndian.Uint16(data[0:])
	addr := binary.LittleEndian.Uint64(data[8:])
	if magic != xlpMagicPG15 || addr != want {
		return fmt.Errorf("WAL segment %s: magic %#x address %#x, want %#x %#x", name, magic, addr, xlpMagicPG15, want)
	}
	return nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	return errors.Join(err, f.Close())
}

// freePort returns a TCP port free now. The cluster listens on a unix socket
// only, in its own directory, so the port just keeps its socket name and
// shared memory key apart from other clusters'.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
