package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Reading wal-g's WAL archive. wal-g's wal-push stores each WAL file as
// wal_005/<file name>.<codec extension> (no extension for compression
// none), compressed, then encrypted if WALG_LIBSODIUM_KEY is set, with no
// header or checksum of its own (wal-g's internal/uploader.go,
// internal/compress_and_encrypt.go). Its wal-fetch tries each codec's
// extension in the order of compression.Decompressors, then the bare name
// (internal/fetch_helper.go, findDecompressorAndDownload); here one listing
// of wal_005/<file name> finds them all and the same order picks one.
//
// A WAL file is looked for in tusk's own layout first (Name.Key) and only
// then in wal-g's, so both live side by side on one prefix. tusk never
// writes under WALGPrefix. Decryption is the storage's (package crypt,
// class WALG: the caller classifies keys under WALGPrefix so).
//
// What is checked, with no checksum to check: the codec's own checks (lz4's
// and zstd's content checksums, brotli's and lzma's end of stream); a
// segment or .partial must be a whole segment by its first page header and
// exactly that header's segment size long (CheckSegment), so that a cut
// object never reaches PostgreSQL as a short segment; a history or backup
// history file must end with a newline, as PostgreSQL writes every line.

// WALGPrefix is where wal-g keeps WAL: wal_005/<file name>[.<codec
// extension>] (wal-g's internal/databases/postgres/wal_push_handler.go,
// utility.WalPath). tusk reads there and never writes there.
const WALGPrefix = "wal_005/"

// ErrUnreadable marks a WAL file the repository holds only in a form tusk
// cannot read: a codec tusk does not decode (wal-e's and wal-g's lzo), an
// extension it does not know, or a wal-g object whose bytes do not decode
// (wal-g encrypted it and no key is given, or another tool wrote it). It is
// never "not found": PostgreSQL would take that for the end of the archive.
var ErrUnreadable = errors.New("is stored in a form tusk cannot read")

// walgExts are the extensions wal-g's wal-fetch tries, in its order
// (compression.Decompressors: lz4, lzma, gzip, none's "", then brotli, lzo
// and zstd as their build files add them), with what tusk reads them with.
// ok is false for a codec tusk does not decode.
var walgExts = []struct {
	ext string
	ok  bool
}{
	{".lz4", true}, {".lzma", true}, {".gz", true}, {".", true},
	{".br", true}, {".lzo", false}, {".zst", true},
}

// walgObject is a wal-g WAL object being read.
type walgObject struct {
	key   string
	name  wal.Name
	rc    io.ReadCloser
	raw   *rawHead
	zr    io.ReadCloser
	codec compress.Codec
	hint  string
}

// WALGKeyOf returns the WAL file that key, under WALGPrefix, stores, and
// the codec it is stored with; ok is false for another object of wal-g's
// (its .json metadata, delta maps) or one tusk cannot name. known is false
// for an extension tusk does not decode.
func WALGKeyOf(key string) (n wal.Name, known, ok bool) {
	rest, found := strings.CutPrefix(key, WALGPrefix)
	if !found {
		return wal.Name{}, false, false
	}
	if n, err := wal.ParseName(rest); err == nil {
		return n, true, true
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return wal.Name{}, false, false
	}
	n, err := wal.ParseName(rest[:i])
	if err != nil {
		return wal.Name{}, false, false
	}
	ext := rest[i:]
	if ext == ".json" {
		return wal.Name{}, false, false // wal-g's WAL metadata
	}
	for _, e := range walgExts {
		if e.ext == ext {
			return n, e.ok, true
		}
	}
	return n, false, true
}

// findWALG lists wal-g's objects for WAL file n and picks the one wal-g's
// wal-fetch would read. It returns miss, as it is, when there is none, and
// ErrUnreadable when there is one only in a form tusk cannot read.
func findWALG(ctx context.Context, st storage.Storage, n wal.Name, miss error) (storage.Object, error) {
	prefix := WALGPrefix + n.File
	found := map[string]storage.Object{}
	var unknown []string
	err := st.List(ctx, prefix, func(o storage.Object) error {
		rest := o.Key[len(prefix):]
		if rest != "" && (rest[0] != '.' || strings.Count(rest, ".") != 1 || rest == ".partial") {
			return nil // another file: X.partial, X.00000028.backup, X_delta
		}
		if rest == ".json" {
			return nil // wal-g's WAL metadata
		}
		found[rest] = o
		if !knownExt(rest) {
			unknown = append(unknown, o.Key)
		}
		return nil
	})
	if err != nil {
		return storage.Object{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, e := range walgExts {
		o, ok := found[e.ext]
		switch {
		case !ok:
			continue
		case !e.ok:
			return o, fmt.Errorf("%s %s %w: %s is compressed with %s, which tusk does not decode (restore it with wal-g, or recompress it as .lz4)",
				n.Kind, n.File, ErrUnreadable, o.Key, strings.TrimPrefix(e.ext, "."))
		}
		return o, nil
	}
	if o, ok := found[""]; ok {
		return o, nil
	}
	if len(unknown) > 0 {
		return storage.Object{}, fmt.Errorf("%s %s %w: %s has an extension tusk does not know", n.Kind, n.File, ErrUnreadable, unknown[0])
	}
	return storage.Object{}, miss
}

// Stat returns the object that holds WAL file n: tusk's own, or else the
// one of wal-g's that wal-fetch would read. A file in neither layout is
// storage.ErrNotFound; one that wal-g's layout holds only in a form tusk
// cannot read is ErrUnreadable.
func Stat(ctx context.Context, st storage.Storage, n wal.Name) (storage.Object, error) {
	o, err := st.Stat(ctx, n.Key())
	if !errors.Is(err, storage.ErrNotFound) {
		return o, err
	}
	return findWALG(ctx, st, n, err)
}

// openWALG finds WAL file n in wal-g's layout and opens it. It returns
// miss, as it is, when wal-g's layout has no object for n either.
func (a *Archive) openWALG(ctx context.Context, n wal.Name, miss error) (*walgObject, error) {
	obj, err := findWALG(ctx, a.Store, n, miss)
	if err != nil {
		return nil, err
	}
	key, prefix := obj.Key, WALGPrefix+n.File
	rc, err := a.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", key, err)
	}
	c := compress.Codec{}
	if ext := key[len(prefix):]; ext != "" && ext != "." {
		c, _ = compress.FromKey(key)
	}
	raw := &rawHead{r: rc}
	zr, err := c.NewReader(raw)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s: %w: %v", key, ErrUnreadable, err)
	}
	return &walgObject{key: key, name: n, rc: rc, raw: raw, zr: zr, codec: c, hint: a.WALGHint}, nil
}

// knownExt reports whether ext is one of wal-g's (or "", the bare name).
func knownExt(ext string) bool {
	if ext == "" {
		return true
	}
	for _, e := range walgExts {
		if e.ext == ext {
			return true
		}
	}
	return false
}

func (o *walgObject) close() {
	o.zr.Close()
	o.rc.Close()
}

// copyTo copies the content to w and checks it as the package comment
// says. A content that fails the check has been written to w in part or
// whole: callers write into a temporary file or discard.
func (o *walgObject) copyTo(w io.Writer) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	hw := &headWriter{w: w}
	n, err := io.CopyBuffer(hw, o.zr, *buf)
	if err != nil {
		if hw.werr != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return n, fmt.Errorf("write %s: %w", pe.Path, pe.Err)
			}
			return n, err
		}
		if o.raw.err != nil {
			return n, o.raw.err // the storage's, or the decryption's, which names the object
		}
		if m, ok := magics[o.codec.Name()]; ok && !bytes.Equal(o.raw.head, m) {
			// Not the codec's stream at all: encrypted, or another tool's.
			return n, fmt.Errorf("%s (wal-g's) %w: it does not start as %s streams do%s", o.key, ErrUnreadable, o.codec.Name(), o.hint)
		}
		return n, fmt.Errorf("%s (wal-g's): %w: %v%s", o.key, ErrCorrupt, err, o.hint)
	}
	switch o.name.Kind {
	case wal.Segment, wal.Partial:
		if _, err := CheckSegment(bytes.NewReader(hw.head), n, o.name, 0); err != nil {
			if n > 0 && !hw.pageHeader() {
				return n, fmt.Errorf("%s (wal-g's) %w: what it decodes to does not start with a WAL page header%s", o.key, ErrUnreadable, o.hint)
			}
			return n, fmt.Errorf("%s (wal-g's): %w: %v", o.key, ErrCorrupt, err)
		}
	default:
		if !hw.text() {
			return n, fmt.Errorf("%s (wal-g's) %w: what it decodes to is not the text of a %s%s", o.key, ErrUnreadable, o.name.Kind, o.hint)
		}
		if hw.last != '\n' {
			return n, fmt.Errorf("%s (wal-g's): %w: a %s ends with a newline, and this one does not (is it cut short?)", o.key, ErrCorrupt, o.name.Kind)
		}
	}
	return n, nil
}

// magics are the first bytes of the codecs' streams that have a magic
// number: lz4's frame and zstd's.
var magics = map[string][]byte{
	"lz4":  {0x04, 0x22, 0x4D, 0x18},
	"zstd": {0x28, 0xB5, 0x2F, 0xFD},
}

// rawHead keeps the first 4 bytes read through it, the stored stream's
// magic number if its codec has one, and the source's error.
type rawHead struct {
	r    io.Reader
	head []byte
	err  error // the source's error, if it failed
}

func (h *rawHead) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err != nil && err != io.EOF {
		h.err = err
	}
	if len(h.head) < 4 {
		h.head = append(h.head, p[:min(n, 4-len(h.head))]...)
	}
	return n, err
}

// headWriter passes writes on and keeps the first bytes (a segment's long
// page header) and the last byte.
type headWriter struct {
	w    io.Writer
	head []byte
	last byte
	werr error
}

func (h *headWriter) Write(p []byte) (int, error) {
	if len(h.head) < longHeaderSize {
		h.head = append(h.head, p[:min(len(p), longHeaderSize-len(h.head))]...)
	}
	if len(p) > 0 {
		h.last = p[len(p)-1]
	}
	n, err := h.w.Write(p)
	if err != nil {
		h.werr = err
	}
	return n, err
}

// text reports whether the content starts like the text of a history or
// backup history file.
func (h *headWriter) text() bool {
	if len(h.head) == 0 {
		return false
	}
	for _, c := range h.head {
		if c != '\t' && c != '\n' && (c < ' ' || c > '~') {
			return false
		}
	}
	return true
}

// pageHeader reports whether the content starts like a WAL page.
func (h *headWriter) pageHeader() bool {
	return len(h.head) >= 2 && (h.head[1] == 0xD0 || h.head[1] == 0xD1)
}

// walgSegmentSize is SegmentSize for wal-g's layout: the segment size the
// first page header of its first segment gives.
func (a *Archive) walgSegmentSize(ctx context.Context) (uint64, bool, error) {
	errFound := errors.New("found")
	var first wal.Name
	err := a.Store.List(ctx, WALGPrefix, func(o storage.Object) error {
		if n, known, ok := WALGKeyOf(o.Key); ok && known && n.Kind == wal.Segment {
			first = n
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, false, err
	}
	if first.File == "" {
		return 0, false, nil
	}
	o, err := a.openWALG(ctx, first, storage.ErrNotFound)
	if err != nil {
		return 0, false, err
	}
	defer o.close()
	var h [longHeaderSize]byte
	if _, err := io.ReadFull(o.zr, h[:]); err != nil {
		return 0, false, fmt.Errorf("%s: %w: %v", o.key, ErrCorrupt, err)
	}
	return uint64(binary.LittleEndian.Uint32(h[32:])), true, nil
}
