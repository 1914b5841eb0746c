// Package compress holds the streaming codecs tusk applies to WAL segments and
// base backup tar parts.
//
// A Codec is one method at one level. The method of a stored object is
// recorded in its name by extension (Ext, FromKey), so reading never guesses;
// the level is a writer's choice that readers do not need.
//
// Every reader this package returns fails on a corrupt or truncated stream
// where the format allows it to know: see NewReader for which formats do.
package compress

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrUnsupported is returned by Parse for a name that is not a codec tusk
// writes, and by NewWriter for a format tusk only reads (wal-g's brotli and
// lzma).
var ErrUnsupported = errors.New("unsupported compression")

// ErrCorrupt is wrapped by read errors that the compressed bytes themselves
// caused: a truncated stream, a checksum mismatch, an invalid block. An error
// of the source reader is returned wrapped, and never with ErrCorrupt, so a
// caller can retry a network failure and give up on a damaged object.
var ErrCorrupt = errors.New("corrupt compressed stream")

type method uint8

// The zero method is methodNone, so the zero Codec copies bytes unchanged.
const (
	methodNone method = iota
	methodZstd
	methodS2
	methodGzip
	methodLZ4
	methodBrotli // wal-g's; read (FromKey, NewReader), never written
	methodLZMA   // wal-g's classic LZMA; likewise
)

var methods = [...]struct {
	name string
	ext  string
	// defaultLevel is what the bare name means; String omits it.
	defaultLevel int
}{
	methodNone:   {name: "none"},
	methodZstd:   {name: "zstd", ext: ".zst", defaultLevel: 3},
	methodS2:     {name: "s2", ext: ".s2", defaultLevel: s2Fast},
	methodGzip:   {name: "gzip", ext: ".gz", defaultLevel: 6},
	methodLZ4:    {name: "lz4", ext: ".lz4"},
	methodBrotli: {name: "brotli", ext: ".br"},
	methodLZMA:   {name: "lzma", ext: ".lzma"},
}

// s2 levels, in the order of s2's writer options.
const (
	s2Fast = iota
	s2Better
	s2Best
)

var s2Levels = [...]string{s2Fast: "", s2Better: "better", s2Best: "best"}

// Codec is one compression method at one level. The zero Codec is "none".
// Codecs are comparable: Parse("zstd") == Parse("zstd:3").
type Codec struct {
	method method
	level  int
}

// Default is the codec tusk writes unless told otherwise: s2 at its fastest
// level. It is chosen for 2-core servers from the figures in BENCHMARKS.md
// ("Compression"), measured on real PostgreSQL 15 WAL and table files:
//   - wal-push is one process per 16 MiB segment. In a fresh process s2 adds
//     about 14 ms of CPU per segment to the ~21 ms the process costs anyway;
//     zstd adds about 110 ms (zstd:1 65 ms, lz4 42 ms, gzip:1 32 ms): four
//     times its cost in a long-lived process, which reuses the ~19 MB of
//     encoder state that a fresh process must allocate.
//   - backup-push must keep up with a ~500 MB/s BASE_BACKUP stream while the
//     walsender holds one of the two cores. On one core s2 compresses table
//     files at ~2.7 GB/s and WAL at ~2.1 GB/s, a fifth to a quarter of the
//     core at 500 MB/s; zstd does ~750 and ~530 MB/s, so it would take most
//     of the core or slow the backup down.
//
// The price is size: zstd's objects are 0.44-0.54 times as large as s2's
// (ratio 11.4 against 5.6 on WAL, 17.6 against 7.7 on tables). Choose "zstd"
// where storage or bandwidth costs more than CPU and backup time; "s2:better"
// saves 10-13% of s2's size for twice its CPU.
var Default = Codec{method: methodS2, level: s2Fast}

// Names returns the method names Parse accepts, without levels.
func Names() []string {
	return []string{"zstd", "s2", "gzip", "lz4", "none"}
}

// validForms lists every form Parse accepts, for error messages.
const validForms = "zstd, zstd:1..22, s2, s2:better, s2:best, gzip, gzip:1..9, lz4, none"

// Parse reads a codec name with an optional level after a colon. The name is
// case-insensitive and surrounding space is ignored.
//
//   - "zstd", "zstd:N" with N in 1..22 (default 3), mapped onto the encoder
//     levels of klauspost/compress as zstd.EncoderLevelFromZstd does: 1-2
//     SpeedFastest, 3-5 SpeedDefault, 6-9 SpeedBetterCompression and 10-22
//     SpeedBestCompression. Levels in one band write identical streams.
//   - "s2", "s2:better", "s2:best".
//   - "gzip", "gzip:N" with N in 1..9 (default 6).
//   - "lz4": the LZ4 frame format, as wal-g writes it. It has no levels.
//   - "none": bytes stored as they are.
//
// These cover wal-g's WALG_COMPRESSION_METHOD values lz4 and zstd. Its
// brotli and lzma are rejected with ErrUnsupported: tusk reads objects wal-g
// wrote with them (FromKey, NewReader) but does not write them.
func Parse(s string) (Codec, error) {
	name, level, hasLevel := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	unknown := func() (Codec, error) {
		return Codec{}, fmt.Errorf("parse compression %q: %w (valid: %s)", s, ErrUnsupported, validForms)
	}
	switch name {
	case "none":
		if hasLevel {
			return unknown()
		}
		return Codec{method: methodNone}, nil
	case "lz4":
		if hasLevel {
			return unknown()
		}
		return Codec{method: methodLZ4}, nil
	case "zstd":
		return parseLevel(s, methodZstd, level, hasLevel, 1, 22)
	case "gzip":
		return parseLevel(s, methodGzip, level, hasLevel, 1, 9)
	case "s2":
		if !hasLevel {
			return Codec{method: methodS2, level: s2Fast}, nil
		}
		for l, n := range s2Levels {
			if n != "" && n == level {
				return Codec{method: methodS2, level: l}, nil
			}
		}
		return unknown()
	case "brotli", "lzma":
		return Codec{}, fmt.Errorf("parse compression %q: tusk reads wal-g's %s objects but does not write %s: %w (valid: %s)",
			s, name, name, ErrUnsupported, validForms)
	}
	return unknown()
}

func parseLevel(s string, m method, level string, hasLevel bool, lo, hi int) (Codec, error) {
	if !hasLevel {
		return Codec{method: m, level: methods[m].defaultLevel}, nil
	}
	n, err := strconv.Atoi(level)
	if err != nil || n < lo || n > hi {
		return Codec{}, fmt.Errorf("parse compression %q: %w: %s level must be %d..%d (valid: %s)",
			s, ErrUnsupported, methods[m].name, lo, hi, validForms)
	}
	return Codec{method: m, level: n}, nil
}

// String returns the canonical form of c, which Parse accepts: the bare name
// at the method's default level, "name:level" otherwise.
func (c Codec) String() string {
	name := c.Name()
	if c.level == methods[c.method].defaultLevel {
		return name
	}
	if c.method == methodS2 {
		return name + ":" + s2Levels[c.level]
	}
	return name + ":" + strconv.Itoa(c.level)
}

// Name returns the method: "zstd", "s2", "gzip", "lz4" or "none" (or "brotli"
// or "lzma" for a codec of wal-g's that FromKey recognised, which tusk reads
// only).
func (c Codec) Name() string { return methods[c.method].name }

// Ext returns the object name extension of the method, with its dot: ".zst",
// ".s2", ".gz", ".lz4", or "" for none. wal-g uses .lz4 and .zst too.
func (c Codec) Ext() string { return methods[c.method].ext }

// FromKey finds the codec of an object by the extension of its key, and
// returns the key without it. A key with no known extension is stored
// uncompressed: FromKey returns the none codec and the key unchanged.
//
// The codec comes at its method's default level, which matters only for
// writing. wal-g's ".br" and ".lzma" are recognised too: NewReader decodes
// them, NewWriter refuses them.
func FromKey(key string) (c Codec, base string) {
	for m, info := range methods {
		if info.ext != "" && strings.HasSuffix(key, info.ext) && len(key) > len(info.ext) {
			return Codec{method: method(m), level: info.defaultLevel}, strings.TrimSuffix(key, info.ext)
		}
	}
	return Codec{}, key
}

// zstdLevel maps a zstd level 1..22 onto klauspost's encoder levels.
func zstdLevel(level int) zstd.EncoderLevel {
	return zstd.EncoderLevelFromZstd(level)
}
