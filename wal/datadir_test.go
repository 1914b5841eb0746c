package wal

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemIDOf(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := SystemIDOf(dir); err == nil || !strings.Contains(err.Error(), "is not a PostgreSQL data directory") {
		t.Fatalf("SystemIDOf of an empty folder: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "global"), 0o700); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8192)
	binary.LittleEndian.PutUint64(b, 7441234567890123456)
	if err := os.WriteFile(filepath.Join(dir, "global", "pg_control"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if id, err := SystemIDOf(dir); err != nil || id != "7441234567890123456" {
		t.Fatalf("SystemIDOf = %q, %v", id, err)
	}
}

func TestRecoveryState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if InRecovery(dir) || InArchiveRecovery(dir) {
		t.Fatal("a folder without signal files is in recovery")
	}
	touch("recovery.signal")
	if !InRecovery(dir) || !InArchiveRecovery(dir) {
		t.Fatal("recovery.signal alone is not archive recovery")
	}
	touch("standby.signal")
	if !InRecovery(dir) || InArchiveRecovery(dir) {
		t.Fatal("a standby (standby.signal) counts as archive recovery")
	}
}
