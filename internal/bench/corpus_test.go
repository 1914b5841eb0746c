package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/wal"
)

// corpusLayout names the corpus format; a cached corpus of another layout is
// rebuilt.
const corpusLayout = "pg15-v1"

// minSegments is how many whole segments the corpus holds at least: 74 × 16
// MiB is over 1 GiB of WAL.
const minSegments = 74

// corpusBuildLimit bounds how long pgbench runs to write the WAL.
const corpusBuildLimit = 20 * time.Minute

// corpus is a cached set of real WAL and what replays it:
//
//	base/     pg_basebackup -X none, taken before any of the WAL was written
//	pgdata/   the stopped cluster (its pg_control identifies the system to
//	          pgBackRest); its pg_wal lacks the corpus segments
//	wal/      every segment from the backup's start to the last, complete one
//	corpus.json  this struct, written last: a corpus without it is incomplete
//
// Everything below base/, pgdata/ and wal/ is owned by the server user.
type corpus struct {
	Layout          string    `json:"layout"`
	PostgresVersion string    `json:"postgres_version"`
	SystemID        string    `json:"system_id"`
	BackupStartLSN  string    `json:"backup_start_lsn"`
	Segments        []string  `json:"segments"`
	BuiltAt         time.Time `json:"built_at"`
	BuildSeconds    float64   `json:"build_seconds"`

	dir string
}

func (c *corpus) baseDir() string   { return filepath.Join(c.dir, "base") }
func (c *corpus) pgdataDir() string { return filepath.Join(c.dir, "pgdata") }
func (c *corpus) walDir() string    { return filepath.Join(c.dir, "wal") }
func (c *corpus) walBytes() int64   { return int64(len(c.Segments)) * segmentSize }

func (c *corpus) segmentPath(name string) string { return filepath.Join(c.walDir(), name) }

// endLSN is where the WAL ends: the start of the segment after the last one.
func (c *corpus) endLSN() string {
	s, _ := wal.ParseSegment(c.Segments[len(c.Segments)-1]) // checked by readCorpus
	return wal.SegmentAt(s.Timeline, s.Pos(segmentSize)+1, segmentSize).Start(segmentSize).String()
}

func (c *corpus) facts() corpusFacts {
	return corpusFacts{Segments: len(c.Segments), Bytes: c.walBytes(), First: c.Segments[0], Last: c.Segments[len(c.Segments)-1]}
}

// corpusDir is $TUSK_BENCH_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bench,
// plus the layout.
func corpusDir() (string, error) {
	root := os.Getenv("TUSK_BENCH_CACHE")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find the cache folder: %w", err)
		}
		root = filepath.Join(cache, "tusk", "bench")
	}
	return filepath.Join(root, "corpus-"+corpusLayout), nil
}

var corpusMu sync.Mutex

// loadCorpus returns the cached corpus, building it first when it is missing
// or incomplete.
func loadCorpus(b *testing.B) *corpus {
	b.Helper()
	corpusMu.Lock()
	defer corpusMu.Unlock()
	dir, err := corpusDir()
	if err != nil {
		b.Fatal(err)
	}
	c, err := readCorpus(dir)
	if err == nil {
		return c
	}
	if !errors.Is(err, os.ErrNotExist) {
		b.Logf("rebuilding the WAL corpus: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatalf("remove the incomplete corpus: %v", err)
	}
	buildCorpus(b, dir)
	c, err = readCorpus(dir)
	if err != nil {
		b.Fatalf("the corpus just built is unusable: %v", err)
	}
	return c
}

// readCorpus loads dir/corpus.json and checks that everything it lists is
// there.
func readCorpus(dir string) (*corpus, error) {
	data, err := os.ReadFile(filepath.Join(dir, "corpus.json"))
	if err != nil {
		return nil, err
	}
	c := &corpus{dir: dir}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("read corpus.json: %w", err)
	}
	if c.Layout != corpusLayout {
		return nil, fmt.Errorf("corpus layout %q, want %q", c.Layout, corpusLayout)
	}
	if len(c.Segments) < minSegments {
		return nil, fmt.Errorf("corpus has %d segments, want at least %d", len(c.Segments), minSegments)
	}
	want, err := wal.Range(c.Segments[0], c.Segments[len(c.Segments)-1], segmentSize)
	if err != nil || len(want) != len(c.Segments) {
		return nil, fmt.Errorf("corpus segments are not consecutive")
	}
	for _, name := range c.Segments {
		fi, err := os.Stat(c.segmentPath(name))
		if err != nil {
			return nil, err
		}
		if fi.Size() != segmentSize {
			return nil, fmt.Errorf("segment %s has %d bytes", name, fi.Size())
		}
	}
	for _, f := range []string{"base/backup_label", "base/global/pg_control", "pgdata/global/pg_control"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// buildCorpus makes a new cluster, backs it up, writes WAL with pgbench until
// there are minSegments whole segments after the backup's start, and moves
// the result into dir. It works in folders the server user can reach (the
// cache may sit in root's home) and moves them into dir at the end, so dir
// only ever holds a whole corpus.
func buildCorpus(b *testing.B, dir string) {
	b.Helper()
	start := time.Now()
	b.Logf("building the WAL corpus in %s (once; a few minutes)", dir)
	ctx := b.Context()
	pg := testenv.NewPostgres(b, testenv.PostgresOptions{Conf: map[string]string{
		"archive_mode":  "off",
		"wal_keep_size": "4GB", // keeps every segment since the backup
		// Commits need not wait for the disk; the WAL is the same.
		"synchronous_commit": "off",
		// Frequent checkpoints make full-page images a large part of the
		// WAL, as on a busy server, and write it ~10 times faster than
		// pgbench's small updates alone (~14 MB/s here rather than ~1).
		"checkpoint_timeout": "30s",
		"max_wal_size":       "128MB",
	}})
	pg.InitDB(b)
	pg.Start(b)

	staging := testenv.ServerTempDir(b)
	base := filepath.Join(staging, "base")
	runOwner(b, pg.RunAsOwner(ctx, filepath.Join(pg.BinDir, "pg_basebackup"),
		"--pgdata", base, "--wal-method", "none", "--checkpoint", "fast", "--no-sync"))
	label, err := os.ReadFile(filepath.Join(base, "backup_label"))
	if err != nil {
		b.Fatalf("read backup_label: %v", err)
	}
	startLSN, first, err := backupStart(string(label))
	if err != nil {
		b.Fatal(err)
	}

	pgbench := filepath.Join(pg.BinDir, "pgbench")
	runOwner(b, pg.RunAsOwner(ctx, pgbench, "--initialize", "--scale", "10", "--quiet"))
	want := int64(minSegments) * segmentSize
	for {
		written, err := strconv.ParseInt(pg.SQL(b, fmt.Sprintf(
			"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')::bigint", startLSN)), 10, 64)
		if err != nil {
			b.Fatalf("read the WAL position: %v", err)
		}
		b.Logf("corpus: %s of WAL written after %v", formatBytes(written), time.Since(start).Round(time.Second))
		if written >= want {
			break
		}
		if time.Since(start) > corpusBuildLimit {
			b.Fatalf("pgbench wrote only %s of WAL in %v", formatBytes(written), corpusBuildLimit)
		}
		runOwner(b, pg.RunAsOwner(ctx, pgbench, "--client", "4", "--jobs", "2", "--time", "10", "--no-vacuum"))
	}
	// Completes the last segment; the shutdown checkpoint goes to the next.
	last := pg.SQL(b, "SELECT pg_walfile_name(pg_switch_wal())")
	c := &corpus{
		Layout:          corpusLayout,
		PostgresVersion: pg.SQL(b, "SHOW server_version"),
		SystemID:        pg.SQL(b, "SELECT system_identifier FROM pg_control_system()"),
		BackupStartLSN:  startLSN,
	}
	if c.Segments, err = wal.Range(first, last, segmentSize); err != nil {
		b.Fatal(err)
	}
	pg.Stop(b)

	pgdata := filepath.Join(staging, "pgdata")
	if err := os.Rename(pg.DataDir, pgdata); err != nil {
		b.Fatalf("move the data folder: %v", err)
	}
	owner, err := ownerOf(pgdata)
	if err != nil {
		b.Fatal(err)
	}
	wal := filepath.Join(staging, "wal")
	if err := mkdirOwned(wal, 0o755, owner); err != nil {
		b.Fatal(err)
	}
	for _, name := range c.Segments {
		if err := os.Rename(filepath.Join(pgdata, "pg_wal", name), filepath.Join(wal, name)); err != nil {
			b.Fatalf("move segment: %v", err)
		}
	}
	syscall.Sync()

	c.BuiltAt = time.Now().UTC()
	c.BuildSeconds = time.Since(start).Seconds()
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "corpus.json"), append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		b.Fatal(err)
	}
	// Through a sibling, so that a copy across file systems that stops
	// half way never looks like a corpus. staging's own cleanup then finds
	// nothing to remove.
	partial := dir + ".partial"
	if err := os.RemoveAll(partial); err != nil {
		b.Fatal(err)
	}
	if err := moveTree(staging, partial); err != nil {
		b.Fatalf("move the corpus into the cache: %v", err)
	}
	if err := os.Rename(partial, dir); err != nil {
		b.Fatalf("move the corpus into the cache: %v", err)
	}
	b.Logf("corpus: %d segments (%s) in %v", len(c.Segments), formatBytes(c.walBytes()), time.Since(start).Round(time.Second))
}

// runOwner runs cmd (made by RunAsOwner) and fails the benchmark with its
// output on error.
func runOwner(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// fakeCorpus writes a corpus of sparse files that readCorpus accepts.
func fakeCorpus(t *testing.T) (string, *corpus) {
	t.Helper()
	dir := t.TempDir()
	first, _ := wal.ParseSegment("0000000100000000000000F0")
	c := &corpus{Layout: corpusLayout}
	for i := range minSegments {
		c.Segments = append(c.Segments, wal.SegmentAt(first.Timeline, first.Pos(segmentSize)+uint64(i), segmentSize).File)
	}
	for _, d := range []string{"base/global", "pgdata/global", "wal"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"base/backup_label", "base/global/pg_control", "pgdata/global/pg_control"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range c.Segments {
		f, err := os.Create(filepath.Join(dir, "wal", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(segmentSize); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	writeManifest(t, dir, c)
	return dir, c
}

func writeManifest(t *testing.T, dir string, c *corpus) {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corpus.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadCorpus(t *testing.T) {
	breakers := map[string]func(t *testing.T, dir string, c *corpus){
		"no manifest": func(t *testing.T, dir string, c *corpus) {
			os.Remove(filepath.Join(dir, "corpus.json"))
		},
		"missing segment": func(t *testing.T, dir string, c *corpus) {
			os.Remove(filepath.Join(dir, "wal", c.Segments[10]))
		},
		"short segment": func(t *testing.T, dir string, c *corpus) {
			os.Truncate(filepath.Join(dir, "wal", c.Segments[len(c.Segments)-1]), segmentSize-1)
		},
		"other layout": func(t *testing.T, dir string, c *corpus) {
			c.Layout = "pg15-v0"
			writeManifest(t, dir, c)
		},
		"too few segments": func(t *testing.T, dir string, c *corpus) {
			c.Segments = c.Segments[1:]
			writeManifest(t, dir, c)
		},
		"gap": func(t *testing.T, dir string, c *corpus) {
			c.Segments = append(c.Segments[:5:5], c.Segments[6:]...)
			c.Segments = append(c.Segments, "000000010000000100000099")
			writeManifest(t, dir, c)
		},
		"no pg_control": func(t *testing.T, dir string, c *corpus) {
			os.Remove(filepath.Join(dir, "pgdata/global/pg_control"))
		},
	}
	dir, c := fakeCorpus(t)
	got, err := readCorpus(dir)
	if err != nil {
		t.Fatalf("readCorpus of a whole corpus: %v", err)
	}
	if got.endLSN() != "1/3A000000" {
		t.Errorf("endLSN = %s, want 1/3A000000", got.endLSN())
	}
	if len(got.Segments) != len(c.Segments) {
		t.Errorf("read %d segments, want %d", len(got.Segments), len(c.Segments))
	}
	for name, breakIt := range breakers {
		t.Run(name, func(t *testing.T) {
			dir, c := fakeCorpus(t)
			breakIt(t, dir, c)
			if _, err := readCorpus(dir); err == nil {
				t.Error("readCorpus accepted a broken corpus")
			}
		})
	}
}
