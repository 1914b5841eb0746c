package cmd

import (
	"strings"
	"testing"

	"github.com/tusk-backup/tusk/config"
)

// TestRestoreCommandKeys: restore_command names the key file and the
// transform, never an inline key, and says what the server must provide
// instead.
func TestRestoreCommandKeys(t *testing.T) {
	const secret = "an inline key of thirty-two bytes"
	cfg := config.Config{Repo: config.Repo{URL: "file:///repo", Scheme: "file"}}
	cfg.Encryption = config.Encryption{Key: secret, KeyFrom: "WALG_LIBSODIUM_KEY", KeyFile: "/etc/tusk/key", FileFrom: "TUSK_ENCRYPTION_KEY_FILE", Transform: "hex"}
	cmd, note, err := restoreCommand(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cmd, secret) || strings.Contains(note, secret) {
		t.Fatalf("the inline key is in restore_command %q or its note %q", cmd, note)
	}
	for _, want := range []string{"TUSK_ENCRYPTION_KEY_FILE=/etc/tusk/key", "TUSK_ENCRYPTION_KEY_TRANSFORM=hex", " wal-fetch %f %p"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("restore_command %q lacks %q", cmd, want)
		}
	}
	if !strings.Contains(note, "does not carry the encryption key given in WALG_LIBSODIUM_KEY") {
		t.Errorf("note %q does not say the server must provide the inline key", note)
	}

	cfg.Encryption = config.Encryption{}
	cmd, note, _ = restoreCommand(cfg)
	if strings.Contains(cmd, "ENCRYPTION") || note != "" {
		t.Errorf("without keys: restore_command %q, note %q", cmd, note)
	}
}
