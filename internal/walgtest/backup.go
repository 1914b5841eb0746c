package walgtest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/compress"
	"github.com/tusk-backup/tusk/storage"
)

// The base backup generator: PushBackup writes a wal-g base backup, full or
// delta, of a running cluster's data directory into a repository, as
// wal-g's backup-push (43fb039f, local mode, WALG_UPLOAD_CONCURRENCY=1, no
// WAL delta maps) writes it. It follows, in wal-g's source:
//   - internal/databases/postgres/backup_push_handler.go: the name
//     (base_<start WAL>, _D_<the parent's> for a delta), the order of the
//     uploads (the parts, pg_control.tar, backup_label.tar after
//     pg_backup_stop, metadata.json, files_metadata.json, the sentinel
//     last), the delta's DeltaLSN, DeltaFullName and DeltaCount;
//   - internal/databases/postgres/bundle.go (HandleWalkedFSObject,
//     addToBundle, UploadPgControl, uploadLabelFiles) and
//     internal/bundle.go: the walk (filepath.Walk, lexical order), the
//     excluded names, tablespaces walked where the walk meets pg_tblspc and
//     stored under pg_tblspc/OID/ without their links, pg_control kept for
//     its own tar, entry names "/" + the path in the data directory, headers
//     from tar.FileInfoHeader, a file skipped when its modification time is
//     the parent's, DataCatalogSize;
//   - regular_tar_ball_composer.go, internal/tar_ball_queue.go: one part
//     filled until its data passes the size threshold, then part_NNN+1;
//     folders' headers written into the current part; TarFileSets;
//   - tar_ball_file_packer.go, pagefile.go, incremental_page_reader.go,
//     postgres_page_header.go: which files a delta holds as pages (under
//     base or pg_tblspc, named N or N.M, a size a non-zero multiple of 8192,
//     not transaction state, in the parent) and which pages (a valid header
//     with an LSN at or after the parent's start, or a new page); a file
//     with an invalid page is stored whole;
//   - backup_sentinel_dto.go: the sentinel (BackupSentinelDtoV2),
//     metadata.json (ExtendedMetadataDto) and files_metadata.json
//     (FilesMetadataDto; DatabasesByNames, which needs a connection, is
//     left out as wal-g leaves it out when it cannot read the catalogs).
//
// Compressed bytes differ from wal-g's (another encoder); everything else
// was compared with what /work/walg-bin/wal-g backup-push wrote for the
// same cluster (object names, tar entry names and headers, JSON fields and
// their order).

// BackupOptions describe one backup to write.
type BackupOptions struct {
	// DataDir is the cluster's data directory, read between
	// pg_backup_start and Stop.
	DataDir string
	// Timeline and StartLSN are where pg_backup_start put the backup.
	Timeline  uint32
	StartLSN  uint64
	PgVersion int // server_version_num
	SystemID  uint64
	Codec     compress.Codec
	// Parent, if set, makes the backup a delta on that wal-g backup.
	Parent string
	// TarSizeThreshold is WALG_TAR_SIZE_THRESHOLD: 0 for wal-g's default.
	TarSizeThreshold int64
	Permanent        bool
	Hostname         string
	// Stop runs pg_backup_stop (in pg_backup_start's session), once
	// pg_control is stored.
	Stop func(ctx context.Context) (Stopped, error)
}

// Stopped is what pg_backup_stop returned.
type Stopped struct {
	Label, TablespaceMap string
	FinishLSN            uint64
}

// wal-g's defaults and constants.
const (
	defaultTarSizeThreshold = 1<<30 - 1
	datetimeFormat          = "%Y-%m-%dT%H:%M:%S.%fZ"
	pageSize                = 8192
	basebackups             = "basebackups_005/"
)

var excludedNames = map[string]bool{
	"log": true, "pg_log": true, "pg_xlog": true, "pg_wal": true,
	"pgsql_tmp": true, "postgresql.auto.conf.tmp": true, "postmaster.pid": true, "postmaster.opts": true, "recovery.conf": true,
	"pg_dynshmem": true, "pg_notify": true, "pg_replslot": true, "pg_serial": true, "pg_stat_tmp": true, "pg_snapshots": true, "pg_subtrans": true,
	"standby.signal": true,
}

var pagedName = regexp.MustCompile(`^(\d+)([.]\d+)?$`)

// sentinelV2 is BackupSentinelDtoV2, field for field.
type sentinelV2 struct {
	LSN                   *uint64   `json:"LSN"`
	DeltaLSN              *uint64   `json:"DeltaLSN,omitempty"`
	DeltaFrom             *string   `json:"DeltaFrom,omitempty"`
	DeltaFullName         *string   `json:"DeltaFullName,omitempty"`
	DeltaCount            *int      `json:"DeltaCount,omitempty"`
	PgVersion             int       `json:"PgVersion"`
	FinishLSN             *uint64   `json:"FinishLSN"`
	SystemIdentifier      *uint64   `json:"SystemIdentifier,omitempty"`
	UncompressedSize      int64     `json:"UncompressedSize"`
	CompressedSize        int64     `json:"CompressedSize"`
	DataCatalogSize       int64     `json:"DataCatalogSize,omitempty"`
	Spec                  *spec     `json:"Spec,omitempty"`
	UserData              any       `json:"UserData,omitempty"`
	FilesMetadataDisabled bool      `json:"FilesMetadataDisabled,omitempty"`
	ChkpNum               *uint32   `json:"ChkpNum"`
	DeltaChkpNum          *uint32   `json:"DeltaChkpNum,omitempty"`
	Version               int       `json:"Version"`
	StartTime             time.Time `json:"StartTime"`
	FinishTime            time.Time `json:"FinishTime"`
	DateFmt               string    `json:"DateFmt"`
	Hostname              string    `json:"Hostname"`
	DataDir               string    `json:"DataDir"`
	IsPermanent           bool      `json:"IsPermanent"`
}

// metadata is ExtendedMetadataDto.
type metadata struct {
	StartTime        time.Time `json:"start_time"`
	FinishTime       time.Time `json:"finish_time"`
	DateFmt          string    `json:"date_fmt"`
	Hostname         string    `json:"hostname"`
	DataDir          string    `json:"data_dir"`
	PgVersion        int       `json:"pg_version"`
	StartLSN         uint64    `json:"start_lsn"`
	FinishLSN        uint64    `json:"finish_lsn"`
	IsPermanent      bool      `json:"is_permanent"`
	SystemIdentifier *uint64   `json:"system_identifier"`
	UncompressedSize int64     `json:"uncompressed_size"`
	CompressedSize   int64     `json:"compressed_size"`
	UserData         any       `json:"user_data,omitempty"`
}

// fileDescription is BackupFileDescription.
type fileDescription struct {
	IsIncremented bool
	IsSkipped     bool
	MTime         time.Time
	CorruptBlocks any `json:",omitempty"`
	UpdatesCount  uint64
}

// filesMetadata is FilesMetadataDto.
type filesMetadata struct {
	Files            map[string]fileDescription `json:"Files,omitempty"`
	TarFileSets      map[string][]string        `json:"TarFileSets,omitempty"`
	DatabasesByNames map[string]any             `json:"DatabasesByNames,omitempty"`
}

// spec is TablespaceSpec.
type spec struct {
	basePrefix string
	names      []string
	locations  map[string]specLocation
}

type specLocation struct {
	Location string `json:"loc"`
	Symlink  string `json:"link"`
}

func (s *spec) MarshalJSON() ([]byte, error) {
	m := map[string]any{"base_prefix": s.basePrefix, "tablespaces": s.names}
	for n, l := range s.locations {
		m[n] = l
	}
	return json.Marshal(m)
}

// pusher is one backup being written.
type pusher struct {
	st      storage.Storage
	o       BackupOptions
	name    string
	base    string // the data directory, normalized
	spec    spec
	files   map[string]fileDescription
	tarSets map[string][]string
	// The parent's files and start, for a delta.
	parentFiles map[string]fileDescription
	deltaLSN    *uint64

	catalogSize, uncompressed, compressed int64
	part                                  *partWriter
	parts                                 int
	control                               string // path of global/pg_control
}

// PushBackup writes one wal-g backup and returns its name.
func PushBackup(ctx context.Context, st storage.Storage, o BackupOptions) (string, error) {
	start := now()
	if o.TarSizeThreshold == 0 {
		o.TarSizeThreshold = defaultTarSizeThreshold
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	p := &pusher{st: st, o: o, base: strings.TrimRight(filepath.ToSlash(o.DataDir), "/"),
		files: map[string]fileDescription{}, tarSets: map[string][]string{}}
	p.spec = spec{basePrefix: p.base, names: []string{}, locations: map[string]specLocation{}}
	p.name = "base_" + walFileName(o.Timeline, o.StartLSN)
	var parent sentinelV2
	if o.Parent != "" {
		if err := readJSON(ctx, st, basebackups+o.Parent+"_backup_stop_sentinel.json", &parent); err != nil {
			return "", err
		}
		var pf filesMetadata
		if err := readJSON(ctx, st, basebackups+o.Parent+"/files_metadata.json", &pf); err != nil {
			return "", err
		}
		p.parentFiles, p.deltaLSN = pf.Files, parent.LSN
		p.name += "_D_" + regexp.MustCompile(`[0-9A-F]{24}`).FindString(o.Parent)
	}
	if err := filepath.Walk(o.DataDir, p.walker(ctx)); err != nil {
		return "", err
	}
	if err := p.closePart(); err != nil {
		return "", err
	}
	if err := p.putControl(ctx); err != nil {
		return "", err
	}
	stopped, err := o.Stop(ctx)
	if err != nil {
		return "", err
	}
	labelTar, err := p.putLabel(ctx, stopped)
	if err != nil {
		return "", err
	}
	p.tarSets[labelTar] = []string{"tablespace_map", "backup_label"}

	s := sentinelV2{
		LSN: &o.StartLSN, PgVersion: o.PgVersion, FinishLSN: &stopped.FinishLSN, SystemIdentifier: &o.SystemID,
		UncompressedSize: p.uncompressed, CompressedSize: p.compressed, DataCatalogSize: p.catalogSize,
	}
	if len(p.spec.names) > 0 {
		s.Spec = &p.spec
	}
	if o.Parent != "" {
		full, count := o.Parent, 1
		if parent.DeltaFrom != nil {
			full, count = *parent.DeltaFullName, *parent.DeltaCount+1
		}
		s.DeltaLSN, s.DeltaFrom, s.DeltaFullName, s.DeltaCount = parent.LSN, &o.Parent, &full, &count
	}
	md := metadata{StartTime: start, FinishTime: now(), DateFmt: datetimeFormat, Hostname: o.Hostname, DataDir: o.DataDir,
		PgVersion: o.PgVersion, StartLSN: o.StartLSN, FinishLSN: stopped.FinishLSN, IsPermanent: o.Permanent, SystemIdentifier: &o.SystemID,
		UncompressedSize: p.uncompressed, CompressedSize: p.compressed}
	s.Version, s.StartTime, s.FinishTime, s.DateFmt, s.Hostname, s.DataDir, s.IsPermanent = 2, md.StartTime, md.FinishTime, md.DateFmt, md.Hostname, md.DataDir, md.IsPermanent
	for _, obj := range []struct {
		key string
		v   any
	}{
		{basebackups + p.name + "/metadata.json", md},
		{basebackups + p.name + "/files_metadata.json", filesMetadata{Files: p.files, TarFileSets: p.tarSets}},
		{basebackups + p.name + "_backup_stop_sentinel.json", s},
	} {
		b, err := json.Marshal(obj.v)
		if err != nil {
			return "", err
		}
		if err := st.Put(ctx, obj.key, bytes.NewReader(b)); err != nil {
			return "", err
		}
	}
	return p.name, nil
}

// walker is HandleWalkedFSObject.
func (p *pusher) walker(ctx context.Context) filepath.WalkFunc {
	return func(fpath string, info fs.FileInfo, err error) error { return p.walk(ctx, fpath, info, err) }
}

func (p *pusher) walk(ctx context.Context, fpath string, info fs.FileInfo, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	fpath = filepath.ToSlash(fpath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	p.catalogSize += info.Size()
	fpath, err = p.symlinkPath(fpath)
	if err != nil {
		return err
	}
	for _, l := range p.spec.locations {
		if fpath == p.base+"/"+l.Symlink {
			return nil
		}
	}
	if path.Base(fpath) == "pg_tblspc" {
		des, err := os.ReadDir(fpath)
		if err != nil {
			return err
		}
		for _, de := range des {
			if de.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(filepath.Join(fpath, de.Name()))
			if err != nil {
				return err
			}
			target = strings.TrimRight(target, "/")
			p.spec.names = append(p.spec.names, de.Name())
			p.spec.locations[de.Name()] = specLocation{Location: target, Symlink: "pg_tblspc/" + de.Name()}
			if err := filepath.Walk(target, p.walker(ctx)); err != nil {
				return err
			}
		}
	}
	if info.Name() == "pg_control" {
		p.control = fpath
		return nil
	}
	return p.add(ctx, fpath, info)
}

// symlinkPath is makeTablespaceSymlinkPath: a path in a tablespace as if
// through its link in pg_tblspc.
func (p *pusher) symlinkPath(fpath string) (string, error) {
	if inDir(fpath, p.base) {
		return fpath, nil
	}
	for _, n := range p.spec.names {
		l := p.spec.locations[n]
		if inDir(fpath, l.Location) {
			return path.Join(p.base, l.Symlink, strings.TrimPrefix(fpath, l.Location)), nil
		}
	}
	return fpath, fmt.Errorf("tablespace at path %s wasn't found", fpath)
}

func inDir(fpath, dir string) bool { return fpath == dir || strings.HasPrefix(fpath, dir+"/") }

// relPath is GetFileRelPath.
func (p *pusher) relPath(fpath string) string {
	return "/" + strings.Trim(strings.TrimPrefix(fpath, p.base), "/")
}

// add is addToBundle.
func (p *pusher) add(ctx context.Context, fpath string, info fs.FileInfo) error {
	excluded := excludedNames[info.Name()]
	if excluded && !info.IsDir() {
		return nil
	}
	hdr, err := tar.FileInfoHeader(info, info.Name())
	if err != nil {
		return err
	}
	hdr.Name = p.relPath(fpath)
	if !excluded && info.Mode().IsRegular() {
		baseFile, inBase := p.parentFiles[hdr.Name]
		if inBase && info.ModTime().Equal(baseFile.MTime) {
			p.files[hdr.Name] = fileDescription{IsSkipped: true, MTime: info.ModTime()}
			return nil
		}
		incremented := p.deltaLSN != nil && inBase && pagedFile(info, fpath)
		return p.addFile(ctx, fpath, info, hdr, incremented)
	}
	w, err := p.tar(ctx)
	if err != nil {
		return err
	}
	p.tarSets[w.name] = append(p.tarSets[w.name], hdr.Name)
	p.files[hdr.Name] = fileDescription{MTime: info.ModTime()}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if excluded && info.IsDir() {
		return filepath.SkipDir
	}
	return nil
}

// pagedFile is isPagedFile.
func pagedFile(info fs.FileInfo, fpath string) bool {
	for _, d := range []string{"pg_xact", "pg_clog", "pg_multixact"} {
		if strings.Contains(fpath, d) {
			return false
		}
	}
	return !info.IsDir() && (strings.Contains(fpath, "base") || strings.Contains(fpath, "pg_tblspc")) &&
		info.Size() > 0 && info.Size()%pageSize == 0 && pagedName.MatchString(path.Base(fpath))
}

// addFile is PackFileIntoTar with the part's size check after it.
func (p *pusher) addFile(ctx context.Context, fpath string, info fs.FileInfo, hdr *tar.Header, incremented bool) error {
	var body io.Reader
	if incremented {
		inc, ok, err := increment(fpath, info.Size(), *p.deltaLSN)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if ok {
			body, hdr.Size = bytes.NewReader(inc), int64(len(inc))
		} else {
			incremented = false // an invalid page: the whole file
		}
	}
	if body == nil {
		f, err := os.Open(fpath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		hdr.Size = info.Size()
		body = io.LimitReader(io.MultiReader(f, zeros{}), hdr.Size)
	}
	w, err := p.tar(ctx)
	if err != nil {
		return err
	}
	p.tarSets[w.name] = append(p.tarSets[w.name], hdr.Name)
	p.files[hdr.Name] = fileDescription{IsIncremented: incremented, MTime: info.ModTime()}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(w.tw, body); err != nil {
		return err
	}
	w.size += hdr.Size
	p.uncompressed += hdr.Size
	if w.size > p.o.TarSizeThreshold {
		return p.closePart()
	}
	return nil
}

// increment is what ReadIncrementalFile yields for a file read in full
// (FullScanInitialize): wal-g's header, the size, the pages changed since
// lsn and their block numbers. ok is false if a page is invalid.
func increment(fpath string, size int64, lsn uint64) (b []byte, ok bool, err error) {
	data, err := os.ReadFile(fpath)
	if err != nil {
		return nil, false, err
	}
	var blocks []uint32
	var pages bytes.Buffer
	for blk := 0; (blk+1)*pageSize <= len(data); blk++ {
		page := data[blk*pageSize : (blk+1)*pageSize]
		valid, isNew, pageLSN := pageHeader(page)
		if !valid && !isNew {
			return nil, false, nil
		}
		if isNew || pageLSN >= lsn {
			blocks = append(blocks, uint32(blk))
			pages.Write(page)
		}
	}
	var out bytes.Buffer
	out.Write([]byte{'w', 'i', '1', 0x55})
	binary.Write(&out, binary.LittleEndian, uint64(size))
	binary.Write(&out, binary.LittleEndian, uint32(len(blocks)))
	for _, b := range blocks {
		binary.Write(&out, binary.LittleEndian, b)
	}
	out.Write(pages.Bytes())
	return out.Bytes(), true, nil
}

// pageHeader reads a page header as postgres_page_header.go does.
func pageHeader(page []byte) (valid, isNew bool, lsn uint64) {
	le := binary.LittleEndian
	lsn = uint64(le.Uint32(page[0:]))<<32 | uint64(le.Uint32(page[4:]))
	flags, lower, upper, special, sizeVersion := le.Uint16(page[10:]), le.Uint16(page[12:]), le.Uint16(page[14:]), le.Uint16(page[16:]), le.Uint16(page[18:])
	valid = flags&7 == flags && lower >= 24 && lower <= upper && upper <= special && int(special) <= pageSize &&
		lsn != 0 && int(sizeVersion&0xFF00) == pageSize && sizeVersion&0xFF <= 5
	return valid, upper == 0, lsn
}

// now is TimeNowCrossPlatformUTC: UTC, rounded up to microseconds.
func now() time.Time {
	t := time.Now().UTC()
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// partWriter is one tar object being written: a tar writer into a codec
// into a Put.
type partWriter struct {
	name string
	tw   *tar.Writer
	zw   io.WriteCloser
	pw   *io.PipeWriter
	g    *errgroup.Group
	size int64 // file bytes, as TarBall.Size counts them
	n    *counter
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// tar is the current part, started if there is none (TarBallQueue.Deque).
func (p *pusher) tar(ctx context.Context) (*partWriter, error) {
	if p.part == nil {
		p.parts++
		w, err := p.open(ctx, fmt.Sprintf("part_%03d.tar", p.parts))
		if err != nil {
			return nil, err
		}
		p.part = w
	}
	return p.part, nil
}

// open starts a tar object in the backup's tar_partitions.
func (p *pusher) open(ctx context.Context, base string) (*partWriter, error) {
	name := base + p.o.Codec.Ext()
	pr, pw := io.Pipe()
	zw, err := p.o.Codec.NewWriter(pw)
	if err != nil {
		return nil, err
	}
	w := &partWriter{name: name, tw: tar.NewWriter(zw), zw: zw, pw: pw, g: &errgroup.Group{}, n: &counter{r: pr}}
	key := basebackups + p.name + "/tar_partitions/" + name
	w.g.Go(func() error {
		err := p.st.Put(ctx, key, w.n)
		pr.CloseWithError(err)
		return err
	})
	return w, nil
}

// finish closes w and waits for its upload.
func (p *pusher) finish(w *partWriter) error {
	err := w.tw.Close()
	if cerr := w.zw.Close(); err == nil {
		err = cerr
	}
	w.pw.CloseWithError(err)
	if perr := w.g.Wait(); err == nil {
		err = perr
	}
	p.compressed += w.n.n
	return err
}

// closePart uploads the current part, if any.
func (p *pusher) closePart() error {
	if p.part == nil {
		return nil
	}
	w := p.part
	p.part = nil
	return p.finish(w)
}

// putControl is UploadPgControl.
func (p *pusher) putControl(ctx context.Context) error {
	if p.control == "" {
		return errors.New("the data directory has no global/pg_control")
	}
	info, err := os.Lstat(p.control)
	if err != nil {
		return err
	}
	hdr, err := tar.FileInfoHeader(info, info.Name())
	if err != nil {
		return err
	}
	hdr.Name = p.relPath(p.control)
	p.parts++
	w, err := p.open(ctx, "pg_control.tar")
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		p.finish(w)
		return err
	}
	f, err := os.Open(p.control)
	if err != nil {
		p.finish(w)
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w.tw, io.LimitReader(f, hdr.Size)); err != nil {
		p.finish(w)
		return err
	}
	p.uncompressed += hdr.Size
	return p.finish(w)
}

// putLabel is uploadLabelFiles: backup_label and tablespace_map, headers
// with nothing but name, mode, size and type.
func (p *pusher) putLabel(ctx context.Context, s Stopped) (string, error) {
	p.parts++
	w, err := p.open(ctx, "backup_label.tar")
	if err != nil {
		return "", err
	}
	for _, f := range []struct{ name, body string }{{"backup_label", s.Label}, {"tablespace_map", s.TablespaceMap}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if err := w.tw.WriteHeader(hdr); err != nil {
			p.finish(w)
			return "", err
		}
		if _, err := io.WriteString(w.tw, f.body); err != nil {
			p.finish(w)
			return "", err
		}
		p.uncompressed += hdr.Size
	}
	return w.name, p.finish(w)
}

// walFileName is the name of the WAL segment holding lsn (16 MiB
// segments).
func walFileName(tli uint32, lsn uint64) string {
	seg := lsn / (16 << 20)
	return fmt.Sprintf("%08X%08X%08X", tli, seg/256, seg%256)
}

func readJSON(ctx context.Context, st storage.Storage, key string, v any) error {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	return nil
}
