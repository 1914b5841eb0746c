package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MarkerKey is the object that says "a tusk repository lives here". The
// first command that writes into a repository writes it; a lookup that
// misses trusts the miss only once the marker (or, in a repository written
// before markers existed, any object at all) is there.
const MarkerKey = "tusk-repository.json"

// ErrNoRepository is returned (wrapped) instead of ErrNotFound when the
// repository itself is not there: a folder that is not mounted or does not
// exist, an S3 prefix that holds nothing. Answering "not found" there would
// tell PostgreSQL's recovery that the archive has ended.
var ErrNoRepository = errors.New("no tusk repository there")

// Marker is the content of MarkerKey.
type Marker struct {
	Format    int       `json:"tusk_repository"` // 1
	CreatedAt time.Time `json:"created_at"`
}

// Guard wraps a Storage so that "not found" is only ever said about a
// repository that proves to be there. Get and Stat of a missing key, and a
// List that finds nothing, check for the marker once per Guard; if neither
// the marker nor any other object exists, they return ErrNoRepository
// instead.
type Guard struct {
	inner Storage

	mu      sync.Mutex
	present bool // the repository was seen to exist; it is not checked again
}

// NewGuard wraps st.
func NewGuard(st Storage) *Guard { return &Guard{inner: st} }

// Unwrap implements Unwrapper.
func (g *Guard) Unwrap() Storage { return g.inner }

// Init makes sure the marker exists, writing it if it does not: the
// commands that create a repository by writing into it (wal-push,
// backup-push) call it before their first lookup.
func (g *Guard) Init(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.present {
		return nil
	}
	_, err := g.inner.Stat(ctx, MarkerKey)
	if errors.Is(err, ErrNotFound) {
		b, _ := json.Marshal(Marker{Format: 1, CreatedAt: time.Now().UTC()})
		err = g.inner.Put(ctx, MarkerKey, bytes.NewReader(append(b, '\n')))
	}
	if err != nil {
		return fmt.Errorf("repository marker %s: %w", MarkerKey, err)
	}
	g.present = true
	return nil
}

// confirm returns nil if the repository is there, ErrNoRepository if it is
// not, or the error that kept it from telling.
func (g *Guard) confirm(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.present {
		return nil
	}
	_, err := g.inner.Stat(ctx, MarkerKey)
	if errors.Is(err, ErrNotFound) {
		// A repository written by a tusk from before markers: any object
		// shows it is there. An empty mount point or prefix has none.
		err = g.inner.List(ctx, "", func(Object) error { return errFoundOne })
		switch {
		case errors.Is(err, errFoundOne):
			err = nil
		case err == nil:
			return fmt.Errorf("%w: it holds neither %s nor any other object (is the folder mounted, and is the repository URL right?)", ErrNoRepository, MarkerKey)
		}
	}
	if err != nil {
		return fmt.Errorf("check that the repository exists: %w", err)
	}
	g.present = true
	return nil
}

var errFoundOne = errors.New("found an object")

// miss turns a lookup's ErrNotFound into ErrNoRepository where the
// repository is not there.
func (g *Guard) miss(ctx context.Context, err error) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if cerr := g.confirm(ctx); cerr != nil {
		return cerr
	}
	return err
}

// Put implements Storage.
func (g *Guard) Put(ctx context.Context, key string, r io.Reader) error {
	return g.inner.Put(ctx, key, r)
}

// Get implements Storage.
func (g *Guard) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := g.inner.Get(ctx, key)
	if err != nil {
		return nil, g.miss(ctx, err)
	}
	return rc, nil
}

// Stat implements Storage.
func (g *Guard) Stat(ctx context.Context, key string) (Object, error) {
	o, err := g.inner.Stat(ctx, key)
	if err != nil {
		return o, g.miss(ctx, err)
	}
	return o, nil
}

// List implements Storage. A listing that finds nothing checks that the
// repository is there.
func (g *Guard) List(ctx context.Context, prefix string, fn func(Object) error) error {
	found := false
	err := g.inner.List(ctx, prefix, func(o Object) error {
		found = true
		return fn(o)
	})
	if err == nil && !found {
		return g.confirm(ctx)
	}
	return err
}

// Delete implements Storage.
func (g *Guard) Delete(ctx context.Context, keys ...string) error {
	return g.inner.Delete(ctx, keys...)
}
