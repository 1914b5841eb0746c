package walg_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage/faulty"
	"github.com/tusk-backup/tusk/storage/local"
	"github.com/tusk-backup/tusk/walg"
)

// The helper process of TestRestoreKilled: it restores the backup of
// $WALG_KILL_REPO into $WALG_KILL_DEST, and when the restore asks for
// pg_control.tar (every other partition written) it says so in
// $WALG_KILL_REACHED and waits to be killed.
func TestRestoreKilledHelper(t *testing.T) {
	repo := os.Getenv("WALG_KILL_REPO")
	if repo == "" {
		return // not the helper: nothing to do (TestRestoreKilled runs it)
	}
	base, err := local.New(repo)
	if err != nil {
		t.Fatal(err)
	}
	st := faulty.New(base)
	st.Inject(faulty.Fault{Op: faulty.Get, Prefix: walg.Prefix, Hook: func(ctx context.Context, key string) error {
		if strings.Contains(key, "/tar_partitions/pg_control.tar") {
			os.WriteFile(os.Getenv("WALG_KILL_REACHED"), nil, 0o600)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}})
	ms, err := walg.List(t.Context(), st, nil)
	if err != nil || len(ms) != 1 {
		t.Fatal(ms, err)
	}
	chain, err := walg.ReadChain(t.Context(), st, ms[0])
	if err != nil {
		t.Fatal(err)
	}
	walg.RestoreChain(t.Context(), chain, os.Getenv("WALG_KILL_DEST"), basebackup.FetchOptions{Store: st, Concurrency: 2})
	t.Fatal("the restore ended: it should have been killed waiting for pg_control.tar")
}

// TestRestoreKilled: a restore killed with SIGKILL at the worst moment,
// every partition written and pg_control.tar to come, leaves a folder
// without global/pg_control (PostgreSQL will not start from it) that holds
// tusk's marker, so a later restore into it says it is unfinished; the
// same restore into a fresh folder ends whole.
func TestRestoreKilled(t *testing.T) {
	repo := t.TempDir()
	st, err := local.New(repo)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{st: st, data: filepath.Join(t.TempDir(), "data")}
	write(t, filepath.Join(f.data, "PG_VERSION"), []byte("15\n"))
	write(t, filepath.Join(f.data, "global/pg_control"), bytes.Repeat([]byte{1}, 8192))
	write(t, filepath.Join(f.data, "base/5/1000"), slicesConcat(page(0x10, 3), page(0x20, 4)))
	name := f.push(t, 0x1000000, "lz4", "")

	dest := filepath.Join(t.TempDir(), "restored")
	reached := filepath.Join(t.TempDir(), "reached")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestRestoreKilledHelper$")
	cmd.Env = append(os.Environ(), "WALG_KILL_REPO="+repo, "WALG_KILL_DEST="+dest, "WALG_KILL_REACHED="+reached)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(reached); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the helper ended (%v) before asking for pg_control.tar:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restore did not ask for pg_control.tar within a minute:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	killed = true

	for _, p := range []string{"PG_VERSION", "backup_label", "base/5/1000", "tusk-restore-unfinished"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("the killed restore was not as far along as the test expects: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "global/pg_control")); err == nil {
		t.Fatal("the killed restore left global/pg_control in place")
	}
	if err := basebackup.CheckDest(dest, "restore folder"); !errors.Is(err, basebackup.ErrUnfinished) {
		t.Errorf("CheckDest on the killed restore's folder: %v, want it unfinished", err)
	}
	fresh, err := restore(t, st, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fresh, "global/pg_control")); err != nil {
		t.Errorf("the second restore: %v", err)
	}
}
