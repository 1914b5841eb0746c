package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// freshDisk makes a new ext4 file system of the given size on a loop
// device, mounts it, and returns the mount's root, owned by the server's
// owner (so pgBackRest can restore into it), and a release function that
// unmounts it and frees its blocks. Every restore the benchmarks time goes
// into a disk of its own, made untimed just before it.
//
// Why: the work area's file system is mounted with online discard, and a
// restore written right after the last one was deleted paid for that
// deletion. Profiles put ext4's inode allocation (recently_deleted,
// find_inode_bit) and the deleted blocks' discards ahead of tusk's own
// work, and the same restore swung from 0.8 to 1.7 s by its place in a
// round; on a fresh file system the place no longer matters. The loop
// device reads and writes its backing file with direct I/O, so the page
// cache holds each page once, as it would for a restore onto a disk of
// its own.
func freshDisk(b *testing.B, size int64) (root string, release func()) {
	b.Helper()
	image := filepath.Join(b.TempDir(), "disk.img")
	owned := testenv.ServerTempDir(b)
	root = filepath.Join(owned, "mnt")
	if err := os.Mkdir(root, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		b.Fatalf("make a disk image: %v", err)
	}
	// Not b.Context(): the release a cleanup runs comes after the
	// benchmark's context is done, and must still unmount and detach.
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	loop := run("losetup", "--find", "--show", "--direct-io=on", image)
	mounted, released := false, false
	release = func() {
		if released {
			return
		}
		released = true
		if mounted {
			run("umount", root)
		}
		run("losetup", "--detach", loop)
		if err := os.Remove(image); err != nil {
			b.Errorf("remove a disk image: %v", err)
		}
		// The image's blocks are discarded when the removal commits;
		// sync waits for that, so the next timed run does not.
		syscall.Sync()
	}
	// Registered before anything else can fail, so that a failing mkfs
	// or mount leaves no loop device attached.
	b.Cleanup(release)
	// Inode tables and the journal are written now, untimed, rather than
	// by ext4's lazy-init thread during the timed restore.
	run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", loop)
	run("mount", loop, root)
	mounted = true
	owner := run("stat", "--format", "%u:%g", owned)
	if err := os.Chmod(root, 0o755); err != nil {
		b.Fatal(err)
	}
	run("chown", owner, root)
	return root, release
}

// diskFor is the size of a fresh disk for a restore of n bytes: room for
// the data twice over and a GiB, never under 4 GiB, in whole MiB (a loop
// device takes whole sectors only).
func diskFor(n int64) int64 {
	const mib = 1 << 20
	return (max(2*n+1<<30, 4<<30) + mib - 1) / mib * mib
}

func checkFreshDisk(b *testing.B) {
	b.Helper()
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("restores are timed on a fresh file system each, which needs %s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		b.Fatal("restores are timed on a fresh file system each, which needs root to mount one")
	}
}

// warmRestore restores the newest backup of the repository env names
// once, untimed, onto a fresh disk: the first gigabytes a benchmark
// process writes into fresh page cache on this VM cost about three times
// what later writes do (measured: the first of two identical restores
// 3.8 s, the second 1.1 s), so the timed restores all reuse freed pages.
func warmRestore(b *testing.B, tusk string, env []string, size int64) {
	b.Helper()
	disk, release := freshDisk(b, diskFor(size))
	defer release()
	cmd := exec.CommandContext(b.Context(), tusk, "backup-fetch", filepath.Join(disk, "pgdata"), "LATEST")
	cmd.Env = append(hermetic(os.Environ()), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("warm-up restore: %v\n%s", err, out)
	}
}
