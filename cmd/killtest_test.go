package cmd_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/internal/testenv"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/wal"
)

// TestIntegrationPushAheadSurvivesKill9 plays PostgreSQL's archiver against
// the real binary and kills wal-push with SIGKILL at random moments, many
// times. After every kill, each file marked .done (by the archiver after an
// exit 0, or by a push-ahead) must be whole and identical in the repository;
// in the end every segment is archived and identical.
func TestIntegrationPushAheadSurvivesKill9(t *testing.T) {
	bin := testenv.BuildTusk(t)
	dataDir := t.TempDir()
	walDir := filepath.Join(dataDir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var names []string
	for i := range 40 {
		name := fmt.Sprintf("0000000100000000000000%02X", i+1)
		b := make([]byte, 2<<20)
		for j := 0; j < len(b); j += 64 {
			b[j] = byte(rng.Uint32())
		}
		n, _ := wal.ParseName(name)
		copy(b, archive.LongPageHeader(n, 2<<20, 7000000000000000001))
		os.WriteFile(filepath.Join(walDir, name), b, 0o600)
		os.WriteFile(filepath.Join(walDir, "archive_status", name+".ready"), nil, 0o600)
		names = append(names, name)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	env := []string{"TUSK_REPO=file://" + repo, "TUSK_WAL_PUSH_AHEAD=12", "TUSK_UPLOAD_CONCURRENCY=3"}
	st, _ := local.New(repo)
	a := &archive.Archive{Store: st, Log: slog.New(slog.DiscardHandler)}

	identical := func(name string) bool {
		dest := filepath.Join(t.TempDir(), name)
		if _, err := a.Fetch(t.Context(), name, dest); err != nil {
			return false
		}
		got, _ := os.ReadFile(dest)
		want, _ := os.ReadFile(filepath.Join(walDir, name))
		return bytes.Equal(got, want)
	}
	checkDone := func() {
		t.Helper()
		done, _ := filepath.Glob(filepath.Join(walDir, "archive_status", "*.done"))
		for _, d := range done {
			name := strings.TrimSuffix(filepath.Base(d), ".done")
			if !identical(name) {
				t.Fatalf("%s is marked done, but the repository does not hold it whole", name)
			}
		}
	}

	kills, calls := 0, 0
	for i := 0; i < len(names); {
		name := names[i]
		if _, err := os.Stat(filepath.Join(walDir, "archive_status", name+".ready")); err != nil {
			i++ // marked done by a push-ahead: the archiver skips it
			continue
		}
		calls++
		if calls > 400 {
			t.Fatal("the archiver made no progress in 400 calls")
		}
		cmd := tuskCommand(t.Context(), bin, env, "wal-push", "pg_wal/"+name)
		cmd.Dir = dataDir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		if rng.IntN(3) > 0 { // two calls in three are killed
			select {
			case err = <-done:
			case <-time.After(time.Duration(rng.IntN(60)) * time.Millisecond):
				cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
				kills++
			}
		} else {
			err = <-done
		}
		checkDone()
		if err != nil {
			continue // PostgreSQL calls again with the same file
		}
		if !identical(name) {
			t.Fatalf("wal-push exited 0 for %s, but the repository does not hold it whole:\n%s", name, stderr.String())
		}
		os.Rename(filepath.Join(walDir, "archive_status", name+".ready"), filepath.Join(walDir, "archive_status", name+".done"))
		i++
	}
	checkDone()
	for _, n := range names {
		if !identical(n) {
			t.Fatalf("%s is not archived intact", n)
		}
	}
	t.Logf("%d segments archived in %d calls with %d kills", len(names), calls, kills)
}
