package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// MountTmpfs mounts a tmpfs of size (mount's syntax: "8m"), writable by
// everyone, on dir (an empty folder the test made, with t.TempDir or
// ServerTempDir) and unmounts it in t.Cleanup: a small file system that
// fills up, for disk-full tests. Mounting needs root (CAP_SYS_ADMIN); where
// it fails the test is skipped, or fails under CI or TUSK_TEST_REQUIRE.
func MountTmpfs(t testing.TB, dir, size string) string {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0777", "tmpfs", dir).CombinedOutput()
	if err != nil {
		Require(t, "tmpfs mount", false, "mount -t tmpfs: "+strings.TrimSpace(string(out)))
		return ""
	}
	// Registered after the cleanup that removes dir, so it runs first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
