package walgtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/walg"
)

// WAL objects as wal-g's wal-push writes them, following wal-g's source at
// commit 43fb039f:
//   - internal/databases/postgres/wal_push_handler.go and
//     internal/uploader.go (uploadFile): the object is
//     wal_005/<file name> plus "." and the codec's extension, for segments,
//     .partial, .history and .backup files alike; compression none has no
//     extension (utility.AddFileExtension), so the key is the bare name.
//   - internal/compress_and_encrypt.go: compression first, then
//     encryption, each writer closed at the end.
//   - internal/compression/{lz4,zstd,brotli,lzma,none}/compressor.go: lz4
//     is pierrec/lz4/v4's NewWriter with its defaults (frame with a
//     content checksum); zstd klauspost's NewWriter at SpeedDefault; brotli
//     cbrotli at quality 3 (here andybalholm/brotli, its Go port, at the
//     same quality: libbrotli decodes it, and tusk decodes libbrotli's, but
//     the bytes differ); lzma ulikunitz/xz's lzma.NewWriter with its
//     defaults (classic LZMA with an end marker, not xz).
//   - internal/crypto/libsodium/{crypter,writer}.go: WALG_LIBSODIUM_KEY
//     (WALG_LIBSODIUM_KEY_TRANSFORM none, hex or base64), secretstream
//     xchacha20poly1305 in 8192-byte messages with no additional data and
//     a last FINAL message of 0 to 8191 bytes (crypt's class WALG).
//
// Checked by hand against a wal-g built from that commit (with and without
// libsodium) on 2026-12-02, for a PostgreSQL 15 segment and a history file:
// lz4, lzma and none give the very bytes wal-g wrote; zstd the same
// settings, but its bytes differ from wal-g's (klauspost/compress 1.20.3
// here, 1.19.2 in wal-g); encrypted objects have the sizes wal-g's have,
// and wal-g's wal-fetch reads every one of them (lz4, zstd, lzma, none).

// Options say how wal-g was configured.
type Options struct {
	// Compression is WALG_COMPRESSION_METHOD: lz4 (wal-g's default, also
	// what "" means), zstd, brotli, lzma or none.
	Compression string
	// LibsodiumKey is WALG_LIBSODIUM_KEY ("" writes plain objects), and
	// KeyTransform WALG_LIBSODIUM_KEY_TRANSFORM ("" is none).
	LibsodiumKey, KeyTransform string
}

// Ext is the object name extension wal-g gives method, with its dot.
func Ext(method string) (string, error) {
	switch method {
	case "", "lz4":
		return ".lz4", nil
	case "zstd":
		return ".zst", nil
	case "brotli":
		return ".br", nil
	case "lzma":
		return ".lzma", nil
	case "none":
		return "", nil
	}
	return "", fmt.Errorf("walgtest: wal-g has no compression method %q", method)
}

// Compress returns a writer that compresses into w as wal-g's compressor
// for method does. Close finishes the stream (not w).
func Compress(w io.Writer, method string) (io.WriteCloser, error) {
	switch method {
	case "", "lz4":
		return lz4.NewWriter(w), nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
	case "brotli":
		return brotli.NewWriterLevel(w, 3), nil
	case "lzma":
		return lzma.NewWriter(w)
	case "none":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("walgtest: wal-g has no compression method %q", method)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// WALKey is the key wal-g stores WAL file (a segment, .partial, .history or
// .backup file name) under with method.
func WALKey(file, method string) (string, error) {
	ext, err := Ext(method)
	if err != nil {
		return "", err
	}
	return archive.WALGPrefix + file + ext, nil
}

// PutWAL stores content as wal-g's wal-push stores WAL file file, and
// returns the key.
func PutWAL(ctx context.Context, st storage.Storage, file string, content io.Reader, o Options) (string, error) {
	key, err := WALKey(file, o.Compression)
	if err != nil {
		return "", err
	}
	if o.LibsodiumKey != "" {
		if st, err = Encrypted(st, o); err != nil {
			return "", err
		}
	}
	pr, pw := io.Pipe()
	go func() {
		zw, err := Compress(pw, o.Compression)
		if err == nil {
			_, err = io.Copy(zw, content)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	err = st.Put(ctx, key, pr)
	pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("walgtest: put %s: %w", key, err)
	}
	return key, nil
}

// PutWALFile stores the file at path under its base name, as PutWAL does.
func PutWALFile(ctx context.Context, st storage.Storage, path string, o Options) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return PutWAL(ctx, st, filepath.Base(path), f, o)
}

// Encrypted wraps st so that what wal-g encrypts is encrypted as wal-g
// encrypts it with o's key: its WAL and its backups' tar partitions, never
// its sentinels or metadata.
func Encrypted(st storage.Storage, o Options) (storage.Storage, error) {
	k, _, err := crypt.NewKey(o.LibsodiumKey, o.KeyTransform)
	if err != nil {
		return nil, fmt.Errorf("walgtest: WALG_LIBSODIUM_KEY %v", err)
	}
	return crypt.New(st, crypt.Options{Keys: []crypt.Key{k}, Classify: func(key string) crypt.Class {
		if strings.HasPrefix(key, archive.WALGPrefix) || walg.IsPartKey(key) {
			return crypt.WALG
		}
		return crypt.Plain
	}})
}
