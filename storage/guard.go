package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
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
	Format     int         `json:"tusk_repository"` // 1
	CreatedAt  time.Time   `json:"created_at"`
	Encryption *Encryption `json:"encryption,omitempty"` // nil: objects are stored as they are
}

// Encryption is what a repository's marker says about its encryption, or
// what a tusk process is configured with; never a key.
type Encryption struct {
	// Kind is EncryptionSecretstream.
	Kind string `json:"kind"`
	// KeyIDs name keys without revealing them (package crypt): in a
	// marker, every key that has written into the repository, in the
	// order they first did; in a process's configuration, its keys, the
	// one it writes with first.
	KeyIDs []string `json:"key_ids"`
	// WriteIDs, in a process's configuration, name what it writes with
	// (the symmetric key's id, or the age recipients): Init adds them to
	// the marker. Never stored.
	WriteIDs []string `json:"-"`
}

// The kinds of encryption (package crypt): EncryptionSecretstream is
// libsodium's crypto_secretstream_xchacha20poly1305 as wal-g frames it,
// each object bound to its key, under a symmetric key; EncryptionAge is the
// same stream under a data key that an age envelope wraps for recipients.
const (
	EncryptionSecretstream = "secretstream-xchacha20poly1305"
	EncryptionAge          = "age+secretstream-xchacha20poly1305"
)

// ErrEncryption is returned (wrapped) when a repository's encryption and
// the keys a process was given do not fit: a key for a plain repository,
// none for an encrypted one, or keys it was not written with.
var ErrEncryption = errors.New("encryption settings do not fit the repository")

// GuardOptions configure a Guard.
type GuardOptions struct {
	// Encryption is what the process was configured with; nil for none.
	Encryption *Encryption
	// KeyHint names the settings that give keys, for error sentences:
	// "TUSK_ENCRYPTION_KEY or TUSK_ENCRYPTION_KEY_FILE".
	KeyHint string
	// Foreign are key prefixes of another tool's objects on the same
	// prefix (wal-g's "wal_005/", "basebackups_005/"): they do not make
	// the repository one that an older tusk wrote without encryption, so
	// an encrypted Init writes its marker beside them.
	Foreign []string
}

// Guard wraps a Storage so that "not found" is only ever said about a
// repository that proves to be there. Get and Stat of a missing key, and a
// List that finds nothing, check for the marker once per Guard; if neither
// the marker nor any other object exists, they return ErrNoRepository
// instead.
type Guard struct {
	inner Storage
	o     GuardOptions

	mu      sync.Mutex
	present bool // the repository was seen to exist; it is not checked again
	fits    bool // the marker was read and fits o.Encryption
	written bool // Init made sure the marker names the key that writes
}

// NewGuard wraps st.
func NewGuard(st Storage) *Guard { return &Guard{inner: st} }

// NewGuardWith wraps st with options.
func NewGuardWith(st Storage, o GuardOptions) *Guard { return &Guard{inner: st, o: o} }

// Unwrap implements Unwrapper.
func (g *Guard) Unwrap() Storage { return g.inner }

// Init makes sure the marker exists, writing it if it does not, and that
// it fits the process's encryption (adding the writing key's id to it
// after a key rotation): the commands that create a repository by writing
// into it (wal-push, backup-push) call it before their first lookup.
func (g *Guard) Init(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.written {
		return nil
	}
	m, err := g.readMarker(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		if g.o.Encryption != nil {
			// A repository from before markers holds plain objects.
			err = g.inner.List(ctx, "", func(o Object) error {
				for _, p := range g.o.Foreign {
					if strings.HasPrefix(o.Key, p) {
						return nil
					}
				}
				return errFoundOne
			})
			if errors.Is(err, errFoundOne) {
				// Or another process wrote the marker just now.
				if m, rerr := g.readMarker(ctx); rerr == nil {
					return g.initWith(ctx, m)
				}
				return fmt.Errorf("%w: this repository holds objects but no %s: an older tusk wrote them without encryption, or the marker was removed; start encrypted backups in a new repository (another prefix or folder)", ErrEncryption, MarkerKey)
			}
			if err != nil {
				return fmt.Errorf("repository marker %s: %w", MarkerKey, err)
			}
		}
		m = &Marker{Format: 1, CreatedAt: time.Now().UTC()}
		if e := g.o.Encryption; e != nil {
			if len(e.WriteIDs) == 0 {
				return fmt.Errorf("%w: this host has keys to read (%s) but none to write with", ErrEncryption, g.o.KeyHint)
			}
			m.Encryption = &Encryption{Kind: e.Kind, KeyIDs: slices.Clone(e.WriteIDs)}
		}
		err = g.writeMarker(ctx, m)
	case err != nil:
	default:
		return g.initWith(ctx, m)
	}
	return g.initDone(err)
}

// initWith finishes Init with the marker m found: it must fit, and the
// keys that write are added to it.
func (g *Guard) initWith(ctx context.Context, m *Marker) error {
	err := g.fit(m)
	if err == nil && g.o.Encryption != nil {
		added := false
		for _, id := range g.o.Encryption.WriteIDs {
			if !slices.Contains(m.Encryption.KeyIDs, id) {
				m.Encryption.KeyIDs = append(m.Encryption.KeyIDs, id)
				added = true
			}
		}
		if added {
			err = g.writeMarker(ctx, m)
		}
	}
	return g.initDone(err)
}

func (g *Guard) initDone(err error) error {
	if err != nil {
		if errors.Is(err, ErrEncryption) {
			return err
		}
		return fmt.Errorf("repository marker %s: %w", MarkerKey, err)
	}
	g.present, g.fits, g.written = true, true, true
	return nil
}

// CheckEncryption reads the marker (once per Guard) and says whether the
// repository's encryption fits the process's: commands call it before
// they read, so that a missing or wrong key is one sentence before any
// work. A repository without a marker (an empty one, one from before
// markers) passes; what it holds decides.
func (g *Guard) CheckEncryption(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fits {
		return nil
	}
	m, err := g.readMarker(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("repository marker %s: %w", MarkerKey, err)
	}
	if err := g.fit(m); err != nil {
		return err
	}
	g.present, g.fits = true, true
	return nil
}

func (g *Guard) readMarker(ctx context.Context) (*Marker, error) {
	rc, err := g.inner.Get(ctx, MarkerKey)
	if errors.Is(err, fs.ErrPermission) && g.o.Encryption == nil {
		// A marker another user wrote with a mode this one cannot
		// read (a folder repository's marker before it was made
		// readable to all): it exists, which is what a process without
		// keys needed to know before markers said more.
		if _, serr := g.inner.Stat(ctx, MarkerKey); serr == nil {
			return &Marker{Format: 1}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, err
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil || m.Format < 1 {
		return nil, fmt.Errorf("%s is not a tusk repository marker; is this prefix or folder another program's?", MarkerKey)
	}
	if m.Encryption != nil && (m.Encryption.Kind == "" || len(m.Encryption.KeyIDs) == 0) {
		return nil, fmt.Errorf("%s names an encryption without its kind or keys", MarkerKey)
	}
	return &m, nil
}

func (g *Guard) writeMarker(ctx context.Context, m *Marker) error {
	b, _ := json.Marshal(m)
	return g.inner.Put(ctx, MarkerKey, bytes.NewReader(append(b, '\n')))
}

// fit says whether marker m fits the process's encryption.
func (g *Guard) fit(m *Marker) error {
	have, want := m.Encryption, g.o.Encryption
	switch {
	case have == nil && want == nil:
		return nil
	case have == nil:
		return fmt.Errorf("%w: this repository is not encrypted, but an encryption key is set (%s): unset it to use this repository, or start encrypted backups in a new one (another prefix or folder)", ErrEncryption, g.o.KeyHint)
	case want == nil:
		return fmt.Errorf("%w: this repository is encrypted (%s, key ids %s): set its key in %s", ErrEncryption, have.Kind, strings.Join(have.KeyIDs, ", "), g.o.KeyHint)
	case have.Kind != want.Kind:
		return fmt.Errorf("%w: this repository is encrypted with %s, not %s", ErrEncryption, have.Kind, want.Kind)
	}
	for _, id := range want.KeyIDs {
		if slices.Contains(have.KeyIDs, id) {
			return nil
		}
	}
	return fmt.Errorf("%w: none of the keys given (%s: key ids %s) is one this repository was written with (key ids %s); to rotate keys, give the new key first and the old ones after it", ErrEncryption, g.o.KeyHint, strings.Join(want.KeyIDs, ", "), strings.Join(have.KeyIDs, ", "))
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
