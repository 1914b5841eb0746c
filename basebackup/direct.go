package basebackup

// Files of directMin and more are restored with direct I/O where the file
// system takes it: their bytes go from tusk's buffer to the disk, not
// through the page cache. Measured on 2 December 2026 (2 shared cores, a
// fresh ext4 on a loop device with direct I/O, durable restores):
//
//   - By hand, a pgbench scale-400 backup (6 GB) restored alternately by
//     two builds, 2-4 rounds: from MinIO 3.4-5.6 s with direct I/O against
//     11.8-20.4 s through the page cache (system time 1.0-1.8 s against
//     15.6-31.4 s); from a folder 3.4-4.5 s against 7.6-16.2 s. On this VM
//     the page cache's memory, freed and returned to the host since it was
//     last used, costs about 1.5-2 s of system time per GB to fill again;
//     direct I/O writes from the same few buffers every time.
//   - BenchmarkRestoreWrite (1.3 GB, memory just freed by the previous
//     round, so none of that cost): 0.87-1.00 s against 0.89 s, with 10%
//     less CPU (1.21-1.26 s against 1.37 s).
//
// Nor does a restore fill the page cache with gigabytes that push out what
// the host had cached, or pile up dirty pages until the kernel throttles
// it.
//
// How: package directio, whose Writer writes a file's whole aligned chunks
// with O_DIRECT and its unaligned head and tail through the page cache; a
// file system that refuses makes the rest of the restore go through the
// page cache. Smaller files go through the page cache.
const directMin = 1 << 20
