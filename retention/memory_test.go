package retention

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// synthStore is a repository of a few objects held in a map (with n = 0,
// WAL objects too) and n WAL segments on timeline 1 (segment i for i in
// 1..n) that it synthesizes on each listing instead of storing, so that the
// heap a delete holds is the delete's own. A deleted segment is one bit.
// Every sampleEvery objects listed it calls sample, which measures the live
// heap. now is the modification time Put gives an object. With walg set
// the segments are wal-g's (wal_005/<segment>.lz4), not tusk's.
type synthStore struct {
	objs    map[string]synthObj
	n       int
	walg    bool
	deleted []uint64
	sample  func()
	listed  int
	now     time.Time
}

type synthObj struct {
	data []byte
	mod  time.Time
}

const synthSegSize = 16 << 20

func newSynthStore(n int, walg bool) *synthStore {
	return &synthStore{objs: map[string]synthObj{}, n: n, walg: walg, deleted: make([]uint64, n/64+1), now: t0}
}

// walPrefix is where the synthesized segments are.
func (s *synthStore) walPrefix() string {
	if s.walg {
		return archive.WALGPrefix
	}
	return wal.Prefix
}

// segKey is the key of synthesized segment name.
func (s *synthStore) segKey(name string) string {
	if s.walg {
		return archive.WALGPrefix + name + ".lz4"
	}
	return wal.Prefix + name[:16] + "/" + name
}

// synthSeg is the name of WAL segment i (256 segments a log, as with 16 MiB
// segments), so that keys ascend with i.
func synthSeg(i int) string { return fmt.Sprintf("%08X%08X%08X", 1, i>>8, i&0xFF) }

func (s *synthStore) Put(_ context.Context, key string, r io.Reader) error {
	if strings.HasPrefix(key, s.walPrefix()) && s.n > 0 {
		return fmt.Errorf("synthStore synthesizes its WAL objects: %s", key)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.objs[key] = synthObj{b, s.now}
	return nil
}

func (s *synthStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	o, ok := s.objs[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

func (s *synthStore) Stat(_ context.Context, key string) (storage.Object, error) {
	if o, ok := s.objs[key]; ok {
		return storage.Object{Key: key, Size: int64(len(o.data)), ModTime: o.mod}, nil
	}
	if i, ok := s.segIndex(key); ok && !s.isDeleted(i) {
		return storage.Object{Key: key, Size: synthSegSize, ModTime: t0}, nil
	}
	return storage.Object{}, storage.ErrNotFound
}

func (s *synthStore) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	var keys []string
	for k := range s.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, ok := s.objs[k]
		if !ok {
			continue // deleted while listing
		}
		if err := fn(storage.Object{Key: k, Size: int64(len(o.data)), ModTime: o.mod}); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(s.walPrefix(), prefix) && !strings.HasPrefix(prefix, s.walPrefix()) {
		return nil
	}
	for i := 1; i <= s.n; i++ {
		if s.isDeleted(i) {
			continue
		}
		key := s.segKey(synthSeg(i))
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.listed++; s.sample != nil && s.listed%sampleEvery == 0 {
			s.sample()
		}
		if err := fn(storage.Object{Key: key, Size: synthSegSize, ModTime: t0}); err != nil {
			return err
		}
	}
	return nil
}

func (s *synthStore) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		if i, ok := s.segIndex(k); ok {
			s.deleted[i/64] |= 1 << (i % 64)
			continue
		}
		delete(s.objs, k)
	}
	return nil
}

func (s *synthStore) segIndex(key string) (int, bool) {
	name, ok := strings.CutPrefix(key, s.walPrefix())
	if s.walg {
		name, _ = strings.CutSuffix(name, ".lz4")
	} else if len(name) == 17+24 {
		name = name[17:]
	}
	if !ok || len(name) != 24 {
		return 0, false
	}
	log, err1 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err2 := strconv.ParseUint(name[16:], 16, 32)
	i := int(log<<8 | seg)
	if err1 != nil || err2 != nil || i < 1 || i > s.n || s.segKey(name) != key {
		return 0, false
	}
	return i, true
}

func (s *synthStore) isDeleted(i int) bool { return s.deleted[i/64]&(1<<(i%64)) != 0 }

func (s *synthStore) walLeft() int {
	n := 0
	for i := 1; i <= s.n; i++ {
		if !s.isDeleted(i) {
			n++
		}
	}
	return n
}

const sampleEvery = 10000

// heapPeak samples the live heap (after a collection) and keeps the
// highest value above the baseline taken by reset.
type heapPeak struct{ base, peak uint64 }

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func (h *heapPeak) reset() { h.base, h.peak = liveHeap(), 0 }

func (h *heapPeak) sample() {
	if v := liveHeap(); v > h.base && v-h.base > h.peak {
		h.peak = v - h.base
	}
}

// deleteMemory runs delete garbage --confirm against a synthesized
// repository of n WAL segments (wal-g's with walg) and three backups (the oldest starting
// halfway, so that half the WAL goes) and returns the peak live heap, above
// what the repository itself holds, while planning and while executing.
func deleteMemory(t testing.TB, n int, walg bool) (plan, exec uint64) {
	ctx := context.Background()
	st := newSynthStore(n, walg)
	for k, start := range []int{n / 2, n/2 + 100, n/2 + 200} {
		m := backup(fmt.Sprintf("base_%s_20261101T03000%dZ", synthSeg(start), k), "A", k, 0, 0, false)
		m.StartWAL, m.EndWAL, m.Format = synthSeg(start), synthSeg(start+1), 1
		m.Parts = []basebackup.Part{{Key: basebackup.DataPrefix(m.Name) + "base.00001.tar.s2", Archive: "base", Seq: 1}}
		m.Manifest = basebackup.Part{Key: basebackup.DataPrefix(m.Name) + "backup_manifest.s2", Archive: "manifest"}
		if err := basebackup.WriteMeta(ctx, st, m); err != nil {
			t.Fatal(err)
		}
	}
	var h heapPeak
	st.sample = h.sample
	h.reset()
	p, err := planGarbage(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	h.sample()
	plan = h.peak
	h.peak = 0
	r, err := Execute(ctx, st, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.sample()
	exec = h.peak
	runtime.KeepAlive(p)
	if want := n/2 - 1; r.WALDeleted != want || st.walLeft() != n-want {
		t.Fatalf("deleted %d WAL objects (%d left), want %d", r.WALDeleted, st.walLeft(), want)
	}
	return plan, exec
}

// planGarbage is delete garbage's dry run: the inventory and the plan.
func planGarbage(ctx context.Context, st storage.Storage) (Plan, error) {
	inv, err := Read(ctx, st)
	if err != nil {
		return Plan{}, err
	}
	p, err := Garbage(inv, GarbageOptions{LeftoverAge: 6 * time.Hour, Now: time.Now(), WAL: true, Leftovers: true})
	if err != nil {
		return Plan{}, err
	}
	return p, p.CountWAL(ctx, st)
}

// BenchmarkDeleteMemory reports the live heap a delete garbage --confirm
// holds per WAL object in the repository:
//
//	go test -run '^$' -bench DeleteMemory -benchtime 1x ./retention/
func BenchmarkDeleteMemory(b *testing.B) {
	for _, n := range []int{20000, 200000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var plan, exec uint64
			for range b.N {
				plan, exec = deleteMemory(b, n, false)
			}
			b.ReportMetric(float64(plan)/float64(n), "plan-B/object")
			b.ReportMetric(float64(exec)/float64(n), "exec-B/object")
			b.ReportMetric(float64(max(plan, exec))/(1<<20), "peak-MiB")
		})
	}
}

// TestDeleteMemoryBounded: planning and carrying out delete garbage over
// 100,000 WAL objects, tusk's or wal-g's, holds less than 1 MiB of heap,
// whatever the number of objects (listing them into the plan held about 12
// MiB).
func TestDeleteMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("lists 100,000 objects three times")
	}
	for _, walg := range []bool{false, true} {
		plan, exec := deleteMemory(t, 100000, walg)
		t.Logf("wal-g's layout %v: peak live heap: plan %d B, execute %d B", walg, plan, exec)
		if plan > 1<<20 || exec > 1<<20 {
			t.Fatalf("wal-g's layout %v: peak live heap: plan %d B, execute %d B; want less than 1 MiB", walg, plan, exec)
		}
	}
}
