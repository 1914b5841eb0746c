// Package storagetest is the one conformance suite every storage backend
// passes. Backends call Run from their own tests.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/tusk-backup/tusk/storage"
)

// Options tune the suite for a backend.
type Options struct {
	// Short skips the 100 MiB round trip and the 10,000-key listing.
	Short bool
}

// storeFunc returns a fresh, empty store for one subtest.
type storeFunc = func(t *testing.T) storage.Storage

// property is one property of the contract, checked by fn.
type property struct {
	name string
	fn   func(t *testing.T, newStore storeFunc, opts Options)
}

// Run runs the conformance suite: one subtest per property. newStore
// returns a fresh, empty store for each subtest; subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) storage.Storage, opts Options) {
	suite := []property{
		{"RoundTrip", testRoundTrip},
		{"Missing", testMissing},
		{"ListOrderAndPrefix", testListOrderAndPrefix},
		{"ListStopsAtCallbackError", testListStopsAtCallbackError},
		{"ListCancel", testListCancel},
		{"Overwrite", testOverwrite},
		{"FailingReaderLeavesNoObject", testFailingReaderLeavesNoObject},
		{"CancelledPut", testCancelledPut},
		{"ConcurrentPuts", testConcurrentPuts},
		{"DeleteBatch", testDeleteBatch},
		{"DeleteWhileListing", testDeleteWhileListing},
		{"BadKeys", testBadKeys},
	}
	if !opts.Short {
		suite = append(suite, property{"List10000", testList10000})
	}
	for _, p := range suite {
		t.Run(p.name, func(t *testing.T) { p.fn(t, newStore, opts) })
	}
}

// testRoundTrip: round trips objects of 0 B, 1 B, 16 MiB (and, unless Short,
// 100 MiB+1): Stat gives key and size, Get the same bytes.
func testRoundTrip(t *testing.T, newStore storeFunc, opts Options) {
	sizes := []int64{0, 1, 16 << 20}
	if !opts.Short {
		sizes = append(sizes, 100<<20+1)
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			ctx := t.Context()
			want := put(t, st, "obj/roundtrip", uint64(size), size)
			o, err := st.Stat(ctx, "obj/roundtrip")
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if o.Size != size || o.Key != "obj/roundtrip" {
				t.Fatalf("Stat = %+v, want key obj/roundtrip size %d", o, size)
			}
			if got := getSum(t, st, "obj/roundtrip"); got != want {
				t.Fatalf("content differs after round trip of %d bytes", size)
			}
		})
	}
}

// testMissing: a missing key is ErrNotFound for Get and Stat, not an error
// for Delete, and a prefix of existing keys is no object.
func testMissing(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	if _, err := st.Get(ctx, "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if _, err := st.Stat(ctx, "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat missing: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "no/such/key"); err != nil {
		t.Errorf("Delete missing: %v", err)
	}
	// A prefix of existing keys is not an object.
	put(t, st, "dir/obj", 1, 10)
	if _, err := st.Stat(ctx, "dir"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat of a folder: err = %v, want ErrNotFound", err)
	}
}

// testListOrderAndPrefix: List gives exactly the keys under a prefix, in byte
// order, with their sizes.
func testListOrderAndPrefix(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	keys := []string{"p1/a", "p1/a-b", "p1/a.b", "p1/a0", "p1/b/c", "p1/b-c", "p1/z", "p10/x", "p2", "q/p1/a"}
	shuffled := slices.Clone(keys)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, k := range shuffled {
		put(t, st, k, uint64(i), int64(i))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"p1/a", "p1/a-b", "p1/a.b", "p1/a0", "p1/b-c", "p1/b/c", "p1/z", "p10/x", "p2", "q/p1/a"}},
		{"p1/", []string{"p1/a", "p1/a-b", "p1/a.b", "p1/a0", "p1/b-c", "p1/b/c", "p1/z"}},
		{"p1", []string{"p1/a", "p1/a-b", "p1/a.b", "p1/a0", "p1/b-c", "p1/b/c", "p1/z", "p10/x"}},
		{"p1/a", []string{"p1/a", "p1/a-b", "p1/a.b", "p1/a0"}},
		{"p1/b/", []string{"p1/b/c"}},
		{"p1/zz", nil},
		{"nothing/", nil},
	}
	for _, c := range cases {
		got := list(t, st, c.prefix)
		if !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	// Sizes come with the listing.
	err := st.List(t.Context(), "p2", func(o storage.Object) error {
		if o.Size != int64(slices.Index(shuffled, "p2")) {
			t.Errorf("listed size of p2 = %d, want %d", o.Size, slices.Index(shuffled, "p2"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testListStopsAtCallbackError: List stops at fn's first error and returns
// it.
func testListStopsAtCallbackError(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	for i := range 5 {
		put(t, st, fmt.Sprintf("k/%d", i), uint64(i), 1)
	}
	stop := errors.New("stop here")
	n := 0
	err := st.List(t.Context(), "k/", func(storage.Object) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("List returned %v after %d calls, want the callback's error after 2", err, n)
	}
}

// testListCancel: List stops soon after ctx is cancelled and returns
// context.Canceled.
func testListCancel(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	for i := range 5 {
		put(t, st, fmt.Sprintf("k/%d", i), uint64(i), 1)
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := st.List(ctx, "k/", func(storage.Object) error {
		n++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List after cancel returned %v (after %d calls), want context.Canceled", err, n)
	}
	if n > 4 {
		t.Fatalf("List went on for %d calls after cancel", n)
	}
}

// testOverwrite: a Put over an existing key replaces its content and size.
func testOverwrite(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	put(t, st, "o", 1, 1000)
	want := put(t, st, "o", 2, 10)
	if got := getSum(t, st, "o"); got != want {
		t.Fatal("Get after overwrite returned the old content")
	}
	if o, _ := st.Stat(t.Context(), "o"); o.Size != 10 {
		t.Fatalf("size after overwrite = %d, want 10", o.Size)
	}
}

// testFailingReaderLeavesNoObject: a Put whose reader fails leaves no object,
// and a failed overwrite keeps the old one.
func testFailingReaderLeavesNoObject(t *testing.T, newStore storeFunc, opts Options) {
	for _, size := range []int64{0, 100, 20 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			ctx := t.Context()
			boom := errors.New("reader broke")
			r := io.MultiReader(io.LimitReader(rand.NewChaCha8(seed(3)), size), errReader{boom})
			err := st.Put(ctx, "fail/new", r)
			if err == nil {
				t.Fatal("Put with a failing reader returned nil")
			}
			if _, err := st.Stat(ctx, "fail/new"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("after a failed Put, Stat = %v, want ErrNotFound", err)
			}
			if keys := list(t, st, ""); len(keys) != 0 {
				t.Fatalf("after a failed Put the store lists %q", keys)
			}
			// A failed overwrite keeps the old object.
			want := put(t, st, "fail/old", 9, 1234)
			r = io.MultiReader(io.LimitReader(rand.NewChaCha8(seed(4)), size), errReader{boom})
			if err := st.Put(ctx, "fail/old", r); err == nil {
				t.Fatal("overwriting Put with a failing reader returned nil")
			}
			if got := getSum(t, st, "fail/old"); got != want {
				t.Fatal("a failed overwrite changed the old object")
			}
		})
	}
}

// testCancelledPut: a Put whose context is cancelled midway fails and leaves
// no object.
func testCancelledPut(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelAfter{r: io.LimitReader(rand.NewChaCha8(seed(5)), 20<<20), n: 1 << 20, cancel: cancel}
	if err := st.Put(ctx, "cancelled", r); err == nil {
		t.Fatal("Put whose context was cancelled midway returned nil")
	}
	if _, err := st.Stat(t.Context(), "cancelled"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a cancelled Put, Stat = %v, want ErrNotFound", err)
	}
}

// testConcurrentPuts: concurrent Puts of distinct keys all land whole; racing
// Puts on one key leave one writer's content.
func testConcurrentPuts(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	var g errgroup.Group
	sums := make([][32]byte, 16)
	for i := range 16 {
		g.Go(func() error {
			var err error
			sums[i], err = putErr(ctx, st, fmt.Sprintf("c/%02d", i), uint64(100+i), int64(64<<10+i))
			return err
		})
	}
	// Writers racing on one key: the result is one writer's content, whole.
	same := map[[32]byte]bool{}
	var mu sync.Mutex
	for i := range 4 {
		g.Go(func() error {
			sum, err := putErr(ctx, st, "c/same", uint64(200+i), 3<<20)
			mu.Lock()
			same[sum] = true
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		if got := getSum(t, st, fmt.Sprintf("c/%02d", i)); got != sums[i] {
			t.Errorf("c/%02d has the wrong content after concurrent Puts", i)
		}
	}
	if !same[getSum(t, st, "c/same")] {
		t.Error("racing Puts on one key left content that no writer wrote")
	}
}

// testDeleteBatch: Delete of many keys removes them, a missing one among them
// included, and nothing else.
func testDeleteBatch(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("d/%03d", i)
		put(t, st, k, uint64(i), 1)
		keys = append(keys, k)
	}
	if err := st.Delete(t.Context(), append(keys[:20:20], "d/missing")...); err != nil {
		t.Fatal(err)
	}
	if got := list(t, st, "d/"); !slices.Equal(got, keys[20:]) {
		t.Fatalf("after deleting 20 of 30 keys the store lists %q", got)
	}
}

// testDeleteWhileListing: deleting listed keys from fn does not change what
// List goes on to list.
func testDeleteWhileListing(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	var keys []string
	for _, dir := range []string{"a", "b", "c"} {
		for i := range 10 {
			k := fmt.Sprintf("w/%s/%03d", dir, i)
			put(t, st, k, uint64(i), 1)
			keys = append(keys, k)
		}
	}
	// Delete from fn what was listed, in batches of 4: all of w/a/ (a
	// folder backend removes the emptied folder), every other key after.
	var listed, pending, kept []string
	err := st.List(t.Context(), "w/", func(o storage.Object) error {
		listed = append(listed, o.Key)
		if len(listed) <= 10 || len(listed)%2 == 0 {
			pending = append(pending, o.Key)
		} else {
			kept = append(kept, o.Key)
		}
		if len(pending) == 4 {
			err := st.Delete(t.Context(), pending...)
			pending = pending[:0]
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, keys) {
		t.Fatalf("deleting listed keys from fn changed the listing: %q", listed)
	}
	if err := st.Delete(t.Context(), pending...); err != nil {
		t.Fatal(err)
	}
	if got := list(t, st, "w/"); !slices.Equal(got, kept) {
		t.Fatalf("after deleting while listing the store lists %q, want %q", got, kept)
	}
}

// testBadKeys: Put refuses keys that are empty, absolute, with .. or empty
// segments, or a trailing slash.
func testBadKeys(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	for _, k := range []string{"", "/abs", "a/../b", "a//b", "trailing/"} {
		if err := st.Put(t.Context(), k, bytes.NewReader(nil)); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
		}
	}
}

// testList10000: List gives 10,000 keys in order across pages, also while fn
// deletes every other one.
func testList10000(t *testing.T, newStore storeFunc, opts Options) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range 10000 {
		g.Go(func() error {
			return st.Put(gctx, fmt.Sprintf("many/%08d", (i*7919)%10000), bytes.NewReader([]byte{byte(i)}))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	n := 0
	prev := ""
	err := st.List(ctx, "many/", func(o storage.Object) error {
		if o.Key <= prev {
			return fmt.Errorf("key %q listed after %q", o.Key, prev)
		}
		prev = o.Key
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Fatalf("listed %d keys, want 10000", n)
	}
	// Delete every other key from fn, 100 at a time, across pages.
	n = 0
	var pending []string
	err = st.List(ctx, "many/", func(o storage.Object) error {
		if want := fmt.Sprintf("many/%08d", n); o.Key != want {
			return fmt.Errorf("listed %q while deleting, want %q", o.Key, want)
		}
		if n++; n%2 == 0 {
			pending = append(pending, o.Key)
		}
		if len(pending) == 100 {
			err := st.Delete(ctx, pending...)
			pending = pending[:0]
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := list(t, st, "many/"); n != 10000 || len(got) != 5000 {
		t.Fatalf("listed %d keys while deleting, %d left; want 10000 and 5000", n, len(got))
	}
}

func seed(n uint64) [32]byte {
	var s [32]byte
	s[0] = byte(n)
	s[1] = byte(n >> 8)
	s[2] = byte(n >> 16)
	return s
}

// put stores size pseudo-random bytes (from seed n) under key and returns their digest.
func put(t *testing.T, st storage.Storage, key string, n uint64, size int64) [32]byte {
	t.Helper()
	sum, err := putErr(t.Context(), st, key, n, size)
	if err != nil {
		t.Fatalf("Put %s (%d bytes): %v", key, size, err)
	}
	return sum
}

func putErr(ctx context.Context, st storage.Storage, key string, n uint64, size int64) ([32]byte, error) {
	h := sha256.New()
	r := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed(n)), size), h)
	if err := st.Put(ctx, key, r); err != nil {
		return [32]byte{}, err
	}
	return [32]byte(h.Sum(nil)), nil
}

func getSum(t *testing.T, st storage.Storage, key string) [32]byte {
	t.Helper()
	rc, err := st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return [32]byte(h.Sum(nil))
}

func list(t *testing.T, st storage.Storage, prefix string) []string {
	t.Helper()
	var keys []string
	err := st.List(t.Context(), prefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelAfter cancels its context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}
