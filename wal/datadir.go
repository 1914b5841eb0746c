package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// SystemIDOf reads the system identifier, in decimal as pg_controldata
// prints it, from dataDir/global/pg_control: the number every WAL segment
// header of that cluster carries.
func SystemIDOf(dataDir string) (string, error) {
	b := make([]byte, 8)
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s is not a PostgreSQL data directory (it has no global/pg_control)", dataDir)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("cannot read %s/global/pg_control: %w", dataDir, err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil {
		return "", fmt.Errorf("cannot read %s/global/pg_control: %w", dataDir, err)
	}
	return strconv.FormatUint(binary.LittleEndian.Uint64(b), 10), nil
}

// InArchiveRecovery reports whether dataDir (the working directory, ".",
// under restore_command) holds recovery.signal without standby.signal: a
// restore replaying the archive, where "not in the archive" ends recovery
// and PostgreSQL promotes, so any other failure must stop it instead.
func InArchiveRecovery(dataDir string) bool {
	return signalled(dataDir, "recovery.signal") && !signalled(dataDir, "standby.signal")
}

// InRecovery reports whether dataDir holds recovery.signal or
// standby.signal: PostgreSQL removes them when recovery ends.
func InRecovery(dataDir string) bool {
	return signalled(dataDir, "recovery.signal") || signalled(dataDir, "standby.signal")
}

func signalled(dataDir, name string) bool {
	_, err := os.Stat(filepath.Join(dataDir, name))
	return err == nil
}
