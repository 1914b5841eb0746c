package basebackup

import "encoding/binary"

// PostgreSQL's data page checksum (src/include/storage/checksum_impl.h):
// 32 parallel FNV-1a-like sums over the page read as native (here
// little-endian) uint32 words, with pd_checksum taken as zero, two more
// rounds of zeros, the sums XOR-ed together, mixed with the block number
// and reduced to 1..65535.

const (
	pageSize     = 8192   // BLCKSZ: local mode checks pages only on servers built with it
	relSegBlocks = 131072 // RELSEG_SIZE: 1 GiB relation segments of 8 kB blocks
	nSums        = 32
	fnvPrime     = 16777619
)

var checksumBaseOffsets = [nSums]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

func checksumComp(sum, value uint32) uint32 {
	tmp := sum ^ value
	return tmp*fnvPrime ^ tmp>>17
}

// pageChecksum is pg_checksum_page of an 8 kB page p at block blkno (the
// block number in the relation, not in the segment file): with AVX2 where
// the CPU has it (vectorChecksum), else scalarChecksum.
//
// scalarChecksum: the 32 sums are independent, so it takes them eight at a time, each
// group in registers over the page's 64 rows of 32 words: one multiply
// per word is then the pace, rather than the loads and stores of a
// 32-element array and a bounds check per word. It checks every page
// local mode reads, and measured this way it costs about a third of the
// straightforward loop's time (BenchmarkPageChecksum).
func pageChecksum(p []byte, blkno uint32) uint16 {
	if haveVectorChecksum {
		return vectorChecksum(p, blkno)
	}
	return scalarChecksum(p, blkno)
}

// scalarChecksum is pageChecksum in plain Go.
func scalarChecksum(p []byte, blkno uint32) uint16 {
	page := (*[pageSize]byte)(p[:pageSize])
	var result uint32
	for g := 0; g < nSums; g += 8 {
		s0, s1, s2, s3 := checksumBaseOffsets[g], checksumBaseOffsets[g+1], checksumBaseOffsets[g+2], checksumBaseOffsets[g+3]
		s4, s5, s6, s7 := checksumBaseOffsets[g+4], checksumBaseOffsets[g+5], checksumBaseOffsets[g+6], checksumBaseOffsets[g+7]
		for i := 0; i < pageSize; i += 4 * nSums {
			w := (*[32]byte)(page[i+4*g : i+4*g+32])
			v2 := binary.LittleEndian.Uint32(w[8:])
			if i == 0 && g == 0 {
				v2 &^= 0xFFFF // pd_checksum, bytes 8 and 9 of the page, counts as zero
			}
			s0 = checksumComp(s0, binary.LittleEndian.Uint32(w[0:]))
			s1 = checksumComp(s1, binary.LittleEndian.Uint32(w[4:]))
			s2 = checksumComp(s2, v2)
			s3 = checksumComp(s3, binary.LittleEndian.Uint32(w[12:]))
			s4 = checksumComp(s4, binary.LittleEndian.Uint32(w[16:]))
			s5 = checksumComp(s5, binary.LittleEndian.Uint32(w[20:]))
			s6 = checksumComp(s6, binary.LittleEndian.Uint32(w[24:]))
			s7 = checksumComp(s7, binary.LittleEndian.Uint32(w[28:]))
		}
		// Two more rounds of zeros, then the sums XOR-ed together.
		for range 2 {
			s0, s1, s2, s3 = checksumComp(s0, 0), checksumComp(s1, 0), checksumComp(s2, 0), checksumComp(s3, 0)
			s4, s5, s6, s7 = checksumComp(s4, 0), checksumComp(s5, 0), checksumComp(s6, 0), checksumComp(s7, 0)
		}
		result ^= s0 ^ s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7
	}
	result ^= blkno
	return uint16(result%65535 + 1)
}

// pageVerdict is what checking one page found.
type pageVerdict int

const (
	pageGood    pageVerdict = iota
	pageSkipped             // new (pd_upper 0), or changed since the backup started: WAL replay rewrites it
	pageBad
)

// checkPage checks page p, block blkno of its relation, as PostgreSQL's
// BASE_BACKUP does: a new page, or one whose LSN is at or after the
// backup's start (it may be torn by a write in progress; the WAL from the
// start on restores it), is not checked.
func checkPage(p []byte, blkno uint32, start uint64) pageVerdict {
	upper := binary.LittleEndian.Uint16(p[14:])
	if upper == 0 {
		return pageSkipped
	}
	lsn := uint64(binary.LittleEndian.Uint32(p[0:]))<<32 | uint64(binary.LittleEndian.Uint32(p[4:]))
	if lsn >= start {
		return pageSkipped
	}
	if binary.LittleEndian.Uint16(p[8:]) != pageChecksum(p, blkno) {
		return pageBad
	}
	return pageGood
}
