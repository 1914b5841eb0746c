package testenv

import (
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
)

// BuildTusk builds the tusk binary (go build github.com/tusk-backup/tusk) once
// per test process and returns its path. The binary and its directory are
// readable and executable by every user, so it can serve as the
// archive_command of a server run as postgres.
//
// The directory, under $TMPDIR/tusk-test-bin, outlives the test process (no
// single test owns it); each build removes the directories of test processes
// that have exited.
func BuildTusk(t testing.TB) string {
	t.Helper()
	path, err := buildTusk()
	if err != nil {
		t.Fatalf("build tusk: %v", err)
	}
	return path
}

var buildTusk = sync.OnceValues(func() (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go command: %w", err)
	}
	parent := filepath.Join(sharedTempRoot(), "tusk-test-bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	removeStaleBuilds(parent)
	dir, err := os.MkdirTemp(parent, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tusk")
	// No VCS stamping: a checkout owned by another user makes git refuse.
	cmd := exec.Command(gobin, "build", "-buildvcs=false", "-o", path, "github.com/tusk-backup/tusk")
	// Static, as make build makes it: tests and benchmarks run what ships.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		return "", err
	}
	return path, nil
})

// removeStaleBuilds removes the build directories "PID-*" in parent whose
// process no longer exists. Errors are ignored: a leftover directory only
// costs disk space.
func removeStaleBuilds(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidText, _, ok := strings.Cut(e.Name(), "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}
