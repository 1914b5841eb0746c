package basebackup

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// Repository layout of a backup named N:
//
//	backups/N.json                            the metadata (Meta), written last
//	backups/N/backup_started.json             written first: the run that holds the name
//	backups/N/<run>/<archive>.<seq>.tar.<ext> the parts, archive "base" or a tablespace OID
//	backups/N/<run>/backup_manifest.<ext>     PostgreSQL's backup manifest
//	backups/N.deleting                        tombstone of a delete in progress
//
// Each backup-push run writes its parts under a folder of its own, so two
// runs never write the same object. Backups written before runs had folders
// keep their parts directly under backups/N/; the metadata names every key.
//
// A folder under backups/ without its .json is an unfinished or partly
// deleted backup: garbage, never listed.
const backupsPrefix = "backups/"

// TombstoneKey marks backup name as being deleted: a delete writes it before
// it removes the metadata and removes it last, so an interrupted delete is
// found and finished by the next one. A backup with a tombstone is not listed.
func TombstoneKey(name string) string { return backupsPrefix + name + ".deleting" }

// MetaKey is the key of backup name's metadata object.
func MetaKey(name string) string { return backupsPrefix + name + ".json" }

// DataPrefix is the prefix of backup name's parts.
func DataPrefix(name string) string { return backupsPrefix + name + "/" }

// IsMetaKey reports whether key is a backup's metadata object.
func IsMetaKey(key string) bool {
	rest, ok := strings.CutPrefix(key, backupsPrefix)
	return ok && strings.HasSuffix(rest, ".json") && !strings.Contains(rest, "/")
}

// IsTombstoneKey reports whether key is a delete's tombstone.
func IsTombstoneKey(key string) bool {
	rest, ok := strings.CutPrefix(key, backupsPrefix)
	return ok && strings.HasSuffix(rest, ".deleting") && !strings.Contains(rest, "/")
}

// IsStartedKey reports whether key is a running backup's claim on its name.
func IsStartedKey(key string) bool {
	rest, ok := strings.CutPrefix(key, backupsPrefix)
	name, ok2 := strings.CutSuffix(rest, "/backup_started.json")
	return ok && ok2 && !strings.Contains(name, "/")
}

// SealedFields are the metadata fields an encrypted repository keeps only
// in the metadata's encrypted copy (package crypt's Seal class): they name
// files, folders and stored objects, or checksum the rest. The fields left
// plain are what listing and retention need without a key: name, system,
// times, LSNs, WAL segments, sizes, chain, permanence, label.
var SealedFields = []string{"tablespaces", "parts", "manifest", "bad_pages", "checksum"}

// metaFormat is the version of Meta's layout.
const metaFormat = 1

// Meta describes one finished backup.
type Meta struct {
	Format      int          `json:"format"`
	Name        string       `json:"name"`
	SystemID    string       `json:"system_identifier"`
	PGVersion   int          `json:"pg_version"` // server_version_num
	SegSize     uint64       `json:"wal_segment_size"`
	FromStandby bool         `json:"from_standby"`
	StartLSN    wal.LSN      `json:"start_lsn"`
	EndLSN      wal.LSN      `json:"end_lsn"`
	StartTLI    uint32       `json:"start_timeline"`
	EndTLI      uint32       `json:"end_timeline"`
	StartWAL    string       `json:"start_wal_segment"`
	EndWAL      string       `json:"end_wal_segment"`
	StartTime   time.Time    `json:"start_time"`
	FinishTime  time.Time    `json:"finish_time"`
	DataSize    int64        `json:"data_size"`   // bytes of tar
	StoredSize  int64        `json:"stored_size"` // bytes in the repository
	Codec       string       `json:"codec"`
	Permanent   bool         `json:"permanent"`
	Label       string       `json:"label"`
	Tablespaces []Tablespace `json:"tablespaces"`
	Parts       []Part       `json:"parts"`
	Manifest    Part         `json:"manifest"`
	// An incremental backup (PostgreSQL 17's BASE_BACKUP INCREMENTAL)
	// holds the changes since Parent, the backup whose manifest it was
	// taken against; ChainFull is the full backup at the root of its
	// chain, and ChainDepth its distance from it (1 for an incremental on a
	// full backup). All three are zero for a full backup. A restore needs
	// every backup of the chain.
	Parent     string `json:"parent,omitempty"`
	ChainFull  string `json:"chain_full,omitempty"`
	ChainDepth int    `json:"chain_depth,omitempty"`
	// Mode is how the backup was taken: ModeRemote (BASE_BACKUP over the
	// replication protocol; also what an empty Mode of older metadata
	// means) or ModeLocal (files read from the data directory; see
	// PushLocal). The parts and manifest have the same layout either way.
	Mode string `json:"mode,omitempty"`
	// BadPages are the data pages whose checksum failed as a local-mode
	// backup read them (PostgreSQL's data checksums), by file.
	BadPages []BadPages `json:"bad_pages,omitempty"`
	// Origin is the tool whose layout the backup is stored in: empty for
	// tusk's own, OriginWALG for a wal-g backup on the same prefix (read
	// by package walg, never written into backups/).
	Origin string `json:"origin,omitempty"`
	// Sealed is set when the metadata was read from an encrypted
	// repository without its key: only the plain fields are there (see
	// SealedFields), enough to list and retain the backup, not to restore,
	// verify or rewrite it (ErrEncrypted).
	Sealed string `json:"tusk_sealed,omitempty"`
}

// ErrEncrypted is returned (wrapped) for a backup of an encrypted
// repository read without the repository's key.
var ErrEncrypted = errors.New("is encrypted, and no key to it was given")

// NeedsKey says whether m is only the plain view of an encrypted backup's
// metadata.
func (m Meta) NeedsKey() error {
	if m.Sealed != "" {
		return fmt.Errorf("backup %s %w", m.Name, ErrEncrypted)
	}
	return nil
}

// OriginWALG is Meta.Origin of a wal-g backup.
const OriginWALG = "wal-g"

// OriginName is the tool whose layout m is stored in, as backup-list
// prints it: tusk or wal-g.
func (m Meta) OriginName() string {
	if m.Origin == "" {
		return "tusk"
	}
	return m.Origin
}

// Backup modes (Meta.Mode).
const (
	ModeRemote = "remote"
	ModeLocal  = "local"
)

// BadPages are one file's pages whose checksum failed.
type BadPages struct {
	File   string   `json:"file"`   // as in the manifest: pg_tblspc/OID/... for a tablespace's
	Blocks []uint32 `json:"blocks"` // block numbers in the relation (segment × RELSEG_SIZE + block), the first maxBadBlocks
	Count  int      `json:"count"`  // how many failed
}

// Incremental reports whether m holds only the changes since its parent.
func (m Meta) Incremental() bool { return m.Parent != "" }

// Kind is "full" or "incremental", as backup-list prints it.
func (m Meta) Kind() string {
	if m.Incremental() {
		return "incremental"
	}
	return "full"
}

// Part is one stored object of a backup.
type Part struct {
	Key      string `json:"key"`
	Archive  string `json:"archive"`  // "base", a tablespace OID, or "manifest"
	Seq      int    `json:"seq"`      // order within the archive, from 1
	RawSize  int64  `json:"raw_size"` // bytes before compression
	Size     int64  `json:"size"`     // bytes stored
	Checksum string `json:"checksum"` // "xxh3-128:<hex>" of the stored bytes
}

// Duration is how long the backup took.
func (m Meta) Duration() time.Duration { return m.FinishTime.Sub(m.StartTime) }

// validName: 1-128 characters of [A-Za-z0-9_.-], starting with a letter or
// digit, without "..". (A regexp with {0,127} would cost every tusk process
// 1.6 ms of start-up to compile; wal-fetch starts once per segment.)
func validName(name string) bool {
	if name == "" || len(name) > 128 || strings.Contains(name, "..") {
		return false
	}
	for i, c := range name {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// CheckName refuses a backup name that cannot be one of ours.
func CheckName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%q is not a backup name (names look like base_000000010000000000000002_20261122T030000Z; see tusk backup-list)", name)
	}
	return nil
}

// ErrNoBackup is returned for a backup name the repository does not hold.
var ErrNoBackup = errors.New("no such backup")

// ErrBadMeta is returned for a metadata object that exists but cannot be
// understood: not valid JSON, or a format this tusk does not know.
var ErrBadMeta = errors.New("backup metadata is not readable")

// ReadMeta reads one backup's metadata.
func ReadMeta(ctx context.Context, st storage.Storage, name string) (Meta, error) {
	var m Meta
	if err := CheckName(name); err != nil {
		return m, err
	}
	rc, err := st.Get(ctx, MetaKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return m, fmt.Errorf("backup %s: %w in the repository (see tusk backup-list)", name, ErrNoBackup)
	}
	if err != nil {
		return m, fmt.Errorf("read backup %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return m, fmt.Errorf("read backup %s: %w", name, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("backup %s: %w: %s is not valid JSON (%v)", name, ErrBadMeta, MetaKey(name), err)
	}
	if m.Format != metaFormat {
		return m, fmt.Errorf("backup %s: %w: format %d is not supported by this tusk (upgrade tusk)", name, ErrBadMeta, m.Format)
	}
	if m.Sealed != "" {
		// The plain view of an encrypted repository's metadata, read
		// without the key: what it holds is checked by whoever has one.
		if err := m.checkPlainView(name); err != nil {
			return m, fmt.Errorf("backup %s: %w: %s %v", name, ErrBadMeta, MetaKey(name), err)
		}
		return m, nil
	}
	if err := checkMetaSum(b); err != nil {
		return m, fmt.Errorf("backup %s: %w: %s %v; it was changed after tusk wrote it, so its parts and checksums cannot be trusted (tusk delete target %s removes it)", name, ErrBadMeta, MetaKey(name), err, name)
	}
	if err := m.check(name); err != nil {
		return m, fmt.Errorf("backup %s: %w: %s %v", name, ErrBadMeta, MetaKey(name), err)
	}
	return m, nil
}

// The metadata object ends with its own checksum, the XXH3-128 of the
// document written without it:
//
//	{
//	  "format": 1,
//	  ...,
//	  "checksum": "xxh3-128:<hex>"
//	}
//
// The bytes are checked, not a re-encoding, so fields a newer tusk adds do
// not break the check. Objects written before the checksum have none; they
// are read as they are.
const metaSumField = ",\n  \"checksum\": \""

// checkMetaSum verifies a metadata document's own checksum, if it has one.
func checkMetaSum(b []byte) error {
	i := bytes.LastIndex(b, []byte(metaSumField))
	if i < 0 {
		return nil // written before metadata had a checksum
	}
	rest := bytes.TrimSuffix(b[i+len(metaSumField):], []byte("\n"))
	want, ok := bytes.CutSuffix(rest, []byte("\"\n}"))
	if !ok || len(want) != len("xxh3-128:")+32 || !bytes.HasPrefix(want, []byte("xxh3-128:")) {
		return errors.New("ends with a checksum field tusk did not write")
	}
	body := append(append([]byte{}, b[:i]...), "\n}"...)
	if got := sumString(body); string(want) != got {
		return fmt.Errorf("does not match its checksum (%s recorded, %s now)", want, got)
	}
	return nil
}

func sumString(b []byte) string {
	sum := xxh3.Hash128(b).Bytes()
	return "xxh3-128:" + hex.EncodeToString(sum[:])
}

// checkPlainView refuses a plain view that cannot describe a backup.
func (m Meta) checkPlainView(name string) error {
	if m.Name != name {
		return fmt.Errorf("names backup %q, not %q", m.Name, name)
	}
	return m.checkChain()
}

// check refuses metadata that cannot describe a restorable backup, whatever
// its checksum says: a restore needs at least the data directory's archive
// (which holds pg_control and backup_label) and the manifest, each archive's
// parts numbered from 1 without gaps, and the name it is stored under.
func (m Meta) check(name string) error {
	if m.Name != name {
		return fmt.Errorf("names backup %q, not %q", m.Name, name)
	}
	seqs := map[string][]int{}
	for _, p := range m.Parts {
		if err := storage.CheckKey(p.Key); err != nil {
			return fmt.Errorf("lists a part with a bad key: %v", err)
		}
		if p.Size < 0 || p.RawSize < 0 {
			return fmt.Errorf("lists part %s with a negative size", p.Key)
		}
		seqs[p.Archive] = append(seqs[p.Archive], p.Seq)
	}
	for archive, s := range seqs {
		slices.Sort(s)
		for i, seq := range s {
			if seq != i+1 {
				return fmt.Errorf("lists the parts %v of archive %s, not 1 to %d", s, archive, len(s))
			}
		}
	}
	if len(seqs["base"]) == 0 {
		return errors.New("lists no part of the data directory, which holds pg_control and backup_label")
	}
	for _, s := range m.Tablespaces {
		if s.OID != "" && len(seqs[s.OID]) == 0 {
			return fmt.Errorf("lists no part of tablespace %s", s.OID)
		}
	}
	if m.Manifest.Key == "" {
		return errors.New("lists no backup manifest")
	}
	return m.checkChain()
}

// checkChain refuses chain fields that cannot describe a backup.
func (m Meta) checkChain() error {
	switch {
	case m.Parent == "" && (m.ChainFull != "" || m.ChainDepth != 0):
		return errors.New("names a chain but no parent backup")
	case m.Parent != "" && (!validName(m.Parent) || !validName(m.ChainFull) || m.ChainDepth < 1):
		return fmt.Errorf("names parent %q, chain full backup %q and depth %d, which cannot describe an incremental backup", m.Parent, m.ChainFull, m.ChainDepth)
	case m.Parent == m.Name && m.Parent != "":
		return errors.New("names itself as its parent")
	}
	return nil
}

// WriteMeta stores m's metadata object, ending with its own checksum; the
// backup exists once it returns.
func WriteMeta(ctx context.Context, st storage.Storage, m Meta) error {
	if err := m.NeedsKey(); err != nil {
		// Written back, the plain view would lose the parts it does not show.
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	sum := sumString(b)
	b = append(b[:len(b)-len("\n}")], fmt.Sprintf(",\n  \"checksum\": %q\n}\n", sum)...)
	if err := st.Put(ctx, MetaKey(m.Name), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write backup metadata: %w", err)
	}
	return nil
}

// List returns every finished backup, oldest first by finish time, then
// end LSN. A metadata object that cannot be read is reported through bad and
// skipped.
func List(ctx context.Context, st storage.Storage, bad func(key string, err error)) ([]Meta, error) {
	var names []string
	deleting := map[string]bool{}
	err := st.List(ctx, backupsPrefix, func(o storage.Object) error {
		rest := strings.TrimPrefix(o.Key, backupsPrefix)
		if strings.Contains(rest, "/") {
			return nil
		}
		if name, ok := strings.CutSuffix(rest, ".json"); ok {
			names = append(names, name)
		} else if name, ok := strings.CutSuffix(rest, ".deleting"); ok {
			deleting[name] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Meta
	for _, n := range names {
		if deleting[n] {
			continue
		}
		m, err := ReadMeta(ctx, st, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if bad != nil {
				bad(MetaKey(n), err)
			}
			continue
		}
		out = append(out, m)
	}
	SortBackups(out)
	return out, nil
}

// SortBackups orders backups oldest first (see Compare).
func SortBackups(ms []Meta) { slices.SortStableFunc(ms, Compare) }

// Compare orders backups by finish time, then end LSN, then name: never by
// name alone, which would misorder a re-initialized cluster's backups.
func Compare(a, b Meta) int {
	if c := a.FinishTime.Compare(b.FinishTime); c != 0 {
		return c
	}
	if a.EndLSN != b.EndLSN {
		if a.EndLSN < b.EndLSN {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Name, b.Name)
}
