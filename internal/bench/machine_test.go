package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// machineFacts describes this machine and the versions under test.
func machineFacts(b *testing.B, pgbackrestVersion string) machine {
	b.Helper()
	m := machine{
		CPUs:       runtime.NumCPU(),
		CPUModel:   cpuModel(),
		PgBackRest: pgbackrestVersion,
		Go:         runtime.Version(),
		Date:       time.Now(),
	}
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(rel))
	}
	if dir, ok := testenv.PostgresAvailable(); ok {
		if out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output(); err == nil {
			if v := regexp.MustCompile(`PostgreSQL\) (\S+)`).FindSubmatch(out); v != nil {
				m.Postgres = "PostgreSQL " + string(v[1])
			}
		}
	}
	m.TuskRev = tuskRevision()
	return m
}

// buildTusk builds tusk from the working tree (once per process, like
// testenv.BuildTusk) and notes the revision it was built from, so that the
// report names the revision measured even if a commit lands meanwhile.
func buildTusk(b *testing.B) string {
	b.Helper()
	tuskRevision()
	return testenv.BuildTusk(b)
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

// tuskRevision returns the checkout's git revision, marked when the working
// tree has changes (the benchmark then measures more than the revision). It
// is read once per process, when tusk is built.
var tuskRevision = sync.OnceValue(readTuskRevision)

func readTuskRevision() string {
	root, err := repoRoot()
	if err != nil {
		return "unknown"
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := "git " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		rev += " + uncommitted changes"
	}
	return rev
}

// repoRoot is the folder holding go.mod, found upwards from the working
// directory (go test runs in the package's folder).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// reportPath is $TUSK_BENCH_REPORT, else BENCHMARKS.md at the repository
// root. TUSK_BENCH_REPORT=off writes nothing.
func reportPath() (string, error) {
	if p := os.Getenv("TUSK_BENCH_REPORT"); p != "" {
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "BENCHMARKS.md"), nil
}

// publish prints a section and rewrites it in the report file.
func publish(b *testing.B, name, body string) {
	b.Helper()
	fmt.Printf("\n%s\n", body)
	path, err := reportPath()
	if err != nil {
		b.Fatalf("find BENCHMARKS.md: %v", err)
	}
	if path == "off" || os.Getenv("TUSK_BENCH_ONLY") != "" {
		return
	}
	if err := writeSection(path, name, body); err != nil {
		b.Fatalf("write the report: %v", err)
	}
	b.Logf("wrote section %s of %s", name, path)
}

// selected reports whether the run with this metric is to be measured:
// $TUSK_BENCH_ONLY, when set, is a comma-separated list of metrics to run
// (e.g. "pgbackrest-async-lz4,tusk-minio"), for re-measuring one peer while
// working on it. A partial run prints its figures but never rewrites
// BENCHMARKS.md, whose sections compare every peer from one run.
func selected(metric string) bool {
	only := os.Getenv("TUSK_BENCH_ONLY")
	if only == "" {
		return true
	}
	for _, m := range strings.Split(only, ",") {
		if strings.TrimSpace(m) == metric {
			return true
		}
	}
	return false
}

// buildTuskAt builds tusk as it was at commit rev, from this checkout's
// history (git archive, then go build, static as make build makes it), into
// a folder the server user can run it from. It fails when the checkout
// does not hold rev (a shallow clone) or the build fails.
func buildTuskAt(b *testing.B, rev string) (string, error) {
	b.Helper()
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		return "", fmt.Errorf("this checkout does not hold commit %s (a shallow clone?): %v %s", rev[:12], err, bytes.TrimSpace(out))
	}
	src := b.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var errs bytes.Buffer
	archive.Stderr, extract.Stderr = &errs, &errs
	if err := extract.Start(); err != nil {
		return "", err
	}
	if err := archive.Run(); err != nil {
		extract.Wait()
		return "", fmt.Errorf("git archive %s: %v %s", rev[:12], err, bytes.TrimSpace(errs.Bytes()))
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("extract git archive %s: %v %s", rev[:12], err, bytes.TrimSpace(errs.Bytes()))
	}
	path := filepath.Join(testenv.ServerTempDir(b), "tusk-"+rev[:12])
	build := exec.Command("go", "build", "-buildvcs=false", "-o", path, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build at %s: %v\n%s", rev[:12], err, out)
	}
	return path, nil
}
