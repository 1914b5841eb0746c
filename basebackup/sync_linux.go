package basebackup

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// syncTrees makes everything written under dirs durable: one syncfs(2) per
// file system they are on, which writes back every dirty page and inode
// of it. Measured faster here than an fsync per file (see fileWriter). On
// a shared file system it also writes back other programs' dirty data,
// which they would have paid for later.
func syncTrees(dirs []string) error {
	synced := map[uint64]bool{}
	for _, dir := range dirs {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return destError(dir, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && !synced[st.Dev] {
			synced[st.Dev] = true
			err = unix.Syncfs(fd)
		}
		unix.Close(fd)
		if err != nil {
			return destError(dir, err)
		}
	}
	return nil
}

// startWriteback asks the kernel to start writing n bytes of f from off to
// disk, without waiting. It is advice: an error is ignored, syncTrees
// still writes everything.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// preallocate allocates f's first size bytes (and makes it that long), so
// that the pieces of a split file land in allocated space. A file system
// that cannot preallocate is left to allocate as pieces land.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return nil
	}
	return err
}
