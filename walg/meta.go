package walg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Sentinel is a backup's stop sentinel, as wal-g's BackupSentinelDto and
// BackupSentinelDtoV2 write it (backup_sentinel_dto.go): LSNs are JSON
// numbers; version 2 adds the fields of metadata.json. Old wal-g versions
// kept the files metadata in the sentinel and named DeltaLSN DeltaFromLSN
// (DeprecatedSentinelFields, read as wal-g reads them).
type Sentinel struct {
	LSN                   *uint64         `json:"LSN"`
	DeltaLSN              *uint64         `json:"DeltaLSN,omitempty"`
	DeltaFrom             *string         `json:"DeltaFrom,omitempty"`
	DeltaFullName         *string         `json:"DeltaFullName,omitempty"`
	DeltaCount            *int            `json:"DeltaCount,omitempty"`
	PgVersion             int             `json:"PgVersion"`
	FinishLSN             *uint64         `json:"FinishLSN"`
	SystemIdentifier      *uint64         `json:"SystemIdentifier,omitempty"`
	UncompressedSize      int64           `json:"UncompressedSize"`
	CompressedSize        int64           `json:"CompressedSize"`
	DataCatalogSize       int64           `json:"DataCatalogSize,omitempty"`
	Spec                  *Spec           `json:"Spec,omitempty"`
	UserData              json.RawMessage `json:"UserData,omitempty"`
	FilesMetadataDisabled bool            `json:"FilesMetadataDisabled,omitempty"`
	ChkpNum               *uint32         `json:"ChkpNum"`
	DeltaChkpNum          *uint32         `json:"DeltaChkpNum,omitempty"`

	// Version 2.
	Version     int       `json:"Version,omitempty"`
	StartTime   time.Time `json:"StartTime,omitzero"`
	FinishTime  time.Time `json:"FinishTime,omitzero"`
	DateFmt     string    `json:"DateFmt,omitempty"`
	Hostname    string    `json:"Hostname,omitempty"`
	DataDir     string    `json:"DataDir,omitempty"`
	IsPermanent bool      `json:"IsPermanent,omitempty"`
}

// Incremental reports whether the sentinel is a delta backup's.
func (s Sentinel) Incremental() bool { return s.DeltaFrom != nil }

// Spec is a backup's tablespace specification (tablespace_spec.go): the
// data directory's path, and each tablespace (by its pg_tblspc link name,
// the OID) with its location.
type Spec struct {
	BasePrefix  string
	Tablespaces []string
	Locations   map[string]SpecLocation
}

// SpecLocation is where one tablespace was, and its link in the data
// directory (pg_tblspc/OID).
type SpecLocation struct {
	Location string `json:"loc"`
	Symlink  string `json:"link"`
}

// UnmarshalJSON reads a spec as wal-g's TablespaceSpec.UnmarshalJSON does.
func (s *Spec) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if err := json.Unmarshal(m["base_prefix"], &s.BasePrefix); err != nil || s.BasePrefix == "" {
		return errors.New("the tablespace spec has no base_prefix")
	}
	if raw, ok := m["tablespaces"]; ok {
		if err := json.Unmarshal(raw, &s.Tablespaces); err != nil {
			return fmt.Errorf("the tablespace spec's tablespaces: %v", err)
		}
	}
	s.Locations = map[string]SpecLocation{}
	for _, n := range s.Tablespaces {
		var l SpecLocation
		if err := json.Unmarshal(m[n], &l); err != nil || l.Location == "" {
			return fmt.Errorf("the tablespace spec lists tablespace %s without its location", n)
		}
		s.Locations[n] = l
	}
	return nil
}

// MarshalJSON writes a spec as wal-g's TablespaceSpec.MarshalJSON does
// (encoding/json sorts the keys of the map it builds).
func (s Spec) MarshalJSON() ([]byte, error) {
	m := map[string]any{"base_prefix": s.BasePrefix, "tablespaces": s.Tablespaces}
	if s.Tablespaces == nil {
		m["tablespaces"] = []string{}
	}
	for n, l := range s.Locations {
		m[n] = l
	}
	return json.Marshal(m)
}

// Metadata is a backup's metadata.json (ExtendedMetadataDto).
type Metadata struct {
	StartTime        time.Time       `json:"start_time"`
	FinishTime       time.Time       `json:"finish_time"`
	DateFmt          string          `json:"date_fmt"`
	Hostname         string          `json:"hostname"`
	DataDir          string          `json:"data_dir"`
	PgVersion        int             `json:"pg_version"`
	StartLSN         uint64          `json:"start_lsn"`
	FinishLSN        uint64          `json:"finish_lsn"`
	IsPermanent      bool            `json:"is_permanent"`
	SystemIdentifier *uint64         `json:"system_identifier"`
	UncompressedSize int64           `json:"uncompressed_size"`
	CompressedSize   int64           `json:"compressed_size"`
	UserData         json.RawMessage `json:"user_data,omitempty"`
}

// FilesMetadata is a backup's files_metadata.json (FilesMetadataDto):
// every file and folder of the data directory by its tar entry name
// (/base/16384/1259), and the tar entry names of each partition.
type FilesMetadata struct {
	Files       map[string]FileDescription `json:"Files,omitempty"`
	TarFileSets map[string][]string        `json:"TarFileSets,omitempty"`
	// DatabasesByNames is kept as it was read.
	DatabasesByNames json.RawMessage `json:"DatabasesByNames,omitempty"`
}

// FileDescription is one file of a backup (internal/backup_file_description.go).
// A delta backup skips a file whose modification time did not change since
// its parent (IsSkipped: the parent's copy stands) and holds a paged file
// as its changed pages (IsIncremented).
type FileDescription struct {
	IsIncremented bool            `json:"IsIncremented"`
	IsSkipped     bool            `json:"IsSkipped"`
	MTime         time.Time       `json:"MTime"`
	CorruptBlocks json.RawMessage `json:"CorruptBlocks,omitempty"`
	UpdatesCount  uint64          `json:"UpdatesCount"`
}

// ErrBadSentinel marks a sentinel or metadata.json that is not what wal-g
// writes.
var ErrBadSentinel = errors.New("is not a wal-g backup sentinel")

// parseSentinel reads a sentinel and checks what a restore needs of it.
func parseSentinel(name string, b []byte) (Sentinel, *FilesMetadata, error) {
	var s struct {
		Sentinel
		Files        map[string]FileDescription `json:"Files,omitempty"`
		TarFileSets  map[string][]string        `json:"TarFileSets,omitempty"`
		DeltaFromLSN *uint64                    `json:"DeltaFromLSN,omitempty"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Sentinel{}, nil, fmt.Errorf("%s %w (%v)", SentinelKey(name), ErrBadSentinel, err)
	}
	if s.DeltaFromLSN != nil {
		s.DeltaLSN = s.DeltaFromLSN
	}
	switch {
	case s.LSN == nil:
		return s.Sentinel, nil, fmt.Errorf("%s %w: it has no LSN", SentinelKey(name), ErrBadSentinel)
	case s.FinishLSN == nil:
		return s.Sentinel, nil, fmt.Errorf("%s %w: it has no FinishLSN", SentinelKey(name), ErrBadSentinel)
	case s.DeltaFrom != nil && (s.DeltaLSN == nil || s.DeltaFullName == nil || s.DeltaCount == nil):
		return s.Sentinel, nil, fmt.Errorf("%s %w: it names the delta's parent %s without DeltaLSN, DeltaFullName and DeltaCount", SentinelKey(name), ErrBadSentinel, *s.DeltaFrom)
	case s.DeltaFrom != nil && !IsName(*s.DeltaFrom):
		return s.Sentinel, nil, fmt.Errorf("%s %w: its parent %q is not a wal-g backup name", SentinelKey(name), ErrBadSentinel, *s.DeltaFrom)
	}
	var files *FilesMetadata
	if s.Files != nil {
		files = &FilesMetadata{Files: s.Files, TarFileSets: s.TarFileSets}
	}
	return s.Sentinel, files, nil
}

// toMeta describes backup name as tusk's other commands see backups. The
// metadata's times and permanence win over a version-2 sentinel's, as
// backup-mark rewrites metadata.json.
func toMeta(name string, s Sentinel, md *Metadata, parts []storage.Object) basebackup.Meta {
	seg, tli := startSegment(name)
	m := basebackup.Meta{
		Format:     1,
		Name:       name,
		Origin:     basebackup.OriginWALG,
		PGVersion:  s.PgVersion,
		SegSize:    segSizeOf(seg, *s.LSN),
		StartLSN:   wal.LSN(*s.LSN),
		EndLSN:     wal.LSN(*s.FinishLSN),
		StartTLI:   tli,
		EndTLI:     tli,
		StartWAL:   seg,
		StartTime:  s.StartTime,
		FinishTime: s.FinishTime,
		DataSize:   s.UncompressedSize,
		StoredSize: s.CompressedSize,
		Permanent:  s.IsPermanent,
	}
	end := m.EndLSN
	if end > 0 {
		end--
	}
	m.EndWAL = end.SegmentName(tli, m.SegSize)
	if s.SystemIdentifier != nil {
		m.SystemID = strconv.FormatUint(*s.SystemIdentifier, 10)
	}
	if md != nil {
		m.StartTime, m.FinishTime, m.Permanent = md.StartTime, md.FinishTime, md.IsPermanent
		if m.SystemID == "" && md.SystemIdentifier != nil {
			m.SystemID = strconv.FormatUint(*md.SystemIdentifier, 10)
		}
	}
	if s.Incremental() {
		m.Parent, m.ChainFull, m.ChainDepth = *s.DeltaFrom, *s.DeltaFullName, *s.DeltaCount
	}
	if s.Spec != nil {
		for _, n := range s.Spec.Tablespaces {
			m.Tablespaces = append(m.Tablespaces, basebackup.Tablespace{OID: n, Location: s.Spec.Locations[n].Location})
		}
	}
	for _, o := range parts {
		p := basebackup.Part{Key: o.Key, Size: o.Size}
		base := strings.TrimPrefix(o.Key, partsPrefix(name))
		switch {
		case strings.HasPrefix(base, "pg_control.tar"):
			p.Archive = archiveControl
		case strings.HasPrefix(base, "backup_label.tar"):
			p.Archive = archiveLabel
		default:
			p.Archive = "base"
			if n, ok := partNumber(base); ok {
				p.Seq = n
			}
		}
		if m.Codec == "" {
			m.Codec = codecOf(o.Key)
		}
		m.Parts = append(m.Parts, p)
	}
	if m.StoredSize == 0 {
		for _, p := range m.Parts {
			m.StoredSize += p.Size
		}
	}
	if m.FinishTime.IsZero() && len(parts) > 0 {
		m.FinishTime = slices.MaxFunc(parts, func(a, b storage.Object) int { return a.ModTime.Compare(b.ModTime) }).ModTime
	}
	return m
}

// segSizeOf finds the WAL segment size a backup was taken with, which
// wal-g does not record, from its name's start segment and its start LSN:
// PostgreSQL's default if they agree on it, else the one size (a power of
// two from 1 MiB to 1 GiB) they agree on, else the default.
func segSizeOf(seg string, lsn uint64) uint64 {
	log, _ := strconv.ParseUint(seg[8:16], 16, 32)
	no, _ := strconv.ParseUint(seg[16:24], 16, 32)
	fits := func(size uint64) bool {
		perLog := (1 << 32) / size
		return no < perLog && lsn/size == log*perLog+no
	}
	if fits(wal.DefaultSegSize) {
		return wal.DefaultSegSize
	}
	var found uint64
	for size := uint64(1 << 20); size <= 1<<30; size <<= 1 {
		if fits(size) {
			if found != 0 {
				return wal.DefaultSegSize
			}
			found = size
		}
	}
	if found == 0 {
		return wal.DefaultSegSize
	}
	return found
}

// The archives of a wal-g backup's parts besides the data directory's.
const (
	archiveControl = "pg_control"
	archiveLabel   = "backup_label"
)

// partNumber reads NNN of part_NNN.tar[.ext].
func partNumber(base string) (int, bool) {
	rest, ok := strings.CutPrefix(base, "part_")
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, ".tar")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil && n > 0
}

// List returns the wal-g backups of st whose sentinel is there (wal-g
// writes it last, so a backup without one is unfinished), oldest first. A
// sentinel or metadata object that cannot be read is handed to bad, if
// set, and its backup left out.
func List(ctx context.Context, st storage.Storage, bad func(key string, err error)) ([]basebackup.Meta, error) {
	var names []string
	parts := map[string][]storage.Object{}
	err := st.List(ctx, Prefix, func(o storage.Object) error {
		rest := strings.TrimPrefix(o.Key, Prefix)
		if name, ok := strings.CutSuffix(rest, sentinelSuffix); ok && !strings.Contains(name, "/") {
			if IsName(name) {
				names = append(names, name)
			}
			return nil
		}
		if name, file, ok := strings.Cut(rest, "/tar_partitions/"); ok && !strings.Contains(name, "/") && !strings.Contains(file, "/") {
			parts[name] = append(parts[name], o)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list wal-g backups: %w", err)
	}
	var out []basebackup.Meta
	for _, n := range names {
		m, err := readMeta(ctx, st, n, parts[n])
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if bad != nil {
				bad(SentinelKey(n), err)
			}
			continue
		}
		out = append(out, m)
	}
	basebackup.SortBackups(out)
	return out, nil
}

// ReadMeta reads wal-g backup name's sentinel and metadata. A backup
// without a sentinel is basebackup.ErrNoBackup.
func ReadMeta(ctx context.Context, st storage.Storage, name string) (basebackup.Meta, error) {
	if !IsName(name) {
		return basebackup.Meta{}, fmt.Errorf("%q is not a wal-g backup name (base_ and 24 hexadecimal digits, such as base_000000010000000000000002)", name)
	}
	var parts []storage.Object
	err := st.List(ctx, partsPrefix(name), func(o storage.Object) error {
		if !strings.Contains(strings.TrimPrefix(o.Key, partsPrefix(name)), "/") {
			parts = append(parts, o)
		}
		return nil
	})
	if err != nil {
		return basebackup.Meta{}, fmt.Errorf("list wal-g backup %s: %w", name, err)
	}
	return readMeta(ctx, st, name, parts)
}

func readMeta(ctx context.Context, st storage.Storage, name string, parts []storage.Object) (basebackup.Meta, error) {
	b, err := readSmall(ctx, st, SentinelKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return basebackup.Meta{}, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", name, basebackup.ErrNoBackup)
	}
	if err != nil {
		return basebackup.Meta{}, fmt.Errorf("read wal-g backup %s: %w", name, err)
	}
	s, _, err := parseSentinel(name, b)
	if err != nil {
		return basebackup.Meta{}, fmt.Errorf("wal-g backup %s: %w", name, err)
	}
	var md *Metadata
	b, err = readSmall(ctx, st, DataPrefix(name)+"metadata.json")
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// wal-g before metadata.json: the sentinel is all there is.
	case err != nil:
		return basebackup.Meta{}, fmt.Errorf("read wal-g backup %s: %w", name, err)
	default:
		md = new(Metadata)
		if err := json.Unmarshal(b, md); err != nil {
			return basebackup.Meta{}, fmt.Errorf("wal-g backup %s: %w: its %s is not valid JSON (%v)", name, ErrBadSentinel, DataPrefix(name)+"metadata.json", err)
		}
	}
	return toMeta(name, s, md, parts), nil
}

// readSmall reads a JSON object of at most 64 MiB.
func readSmall(ctx context.Context, st storage.Storage, key string) ([]byte, error) {
	return readLimited(ctx, st, key, 64<<20)
}

func readLimited(ctx context.Context, st storage.Storage, key string, limit int64) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// ListAll returns tusk's backups and wal-g's on st together, oldest first
// by their metadata (basebackup.Compare).
func ListAll(ctx context.Context, st storage.Storage, bad func(key string, err error)) ([]basebackup.Meta, error) {
	ms, err := basebackup.List(ctx, st, bad)
	if err != nil {
		return nil, err
	}
	wg, err := List(ctx, st, bad)
	if err != nil {
		return nil, err
	}
	ms = append(ms, wg...)
	basebackup.SortBackups(ms)
	return ms, nil
}

// IsWALG reports whether m is a wal-g backup.
func IsWALG(m basebackup.Meta) bool { return m.Origin == basebackup.OriginWALG }
