//go:build !amd64

package basebackup

// haveVectorChecksum is false: the vector checksum is amd64's.
const haveVectorChecksum = false

func vectorChecksum(p []byte, blkno uint32) uint16 { return scalarChecksum(p, blkno) }
