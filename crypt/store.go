// Package crypt encrypts what tusk stores: a storage.Storage decorator that
// seals every object on its way into the repository and opens it on its
// way out, so that the packages above it (archive, basebackup, retention,
// verify) read and write plaintext and never hold a key.
//
// The format is libsodium's crypto_secretstream_xchacha20poly1305 in the
// framing wal-g writes with WALG_LIBSODIUM_KEY (see stream.go), implemented
// here in Go on golang.org/x/crypto, and byte for byte what libsodium reads
// and writes (the tests check it against the library). Compression happens
// before encryption, above this layer.
//
// Objects fall in three classes (Options.Classify):
//   - Encrypt: the object is a stream as above, bound to its key. WAL,
//     backup parts, PostgreSQL's manifests: everything that holds file
//     contents or file names.
//   - Seal: a JSON object that must stay readable without a key, to list
//     backups from a host that only writes them (name, times, LSNs, sizes),
//     but is authenticated: it is stored as its top-level fields minus
//     Options.Hidden, plus a field "tusk_sealed" holding the encryption of
//     the whole original. A reader with the key gets the original back,
//     after checking that the plain fields are exactly those of the sealed
//     copy (a changed byte is an error); a reader without one sees the
//     plain fields.
//   - Plain: stored as it is (the repository marker, which says that the
//     repository is encrypted; tombstones; the claim of a running backup).
//   - WALG: an object wal-g wrote with WALG_LIBSODIUM_KEY, under wal-g's
//     own prefixes (wal_005/, basebackups_005/): the stream above with no
//     additional data, which wal-g does not bind, and read as wal-g's
//     reader reads it, which takes a stream that ends at a message
//     boundary without its FINAL message as whole. Such a stream is what a
//     cut one looks like, so its reader must check the length itself (a
//     WAL segment is exactly the segment size). tusk writes these only in
//     tests (package walgtest), to build wal-g repositories. In age mode,
//     which wal-g does not have, they are stored and read as Plain.
package crypt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tusk-backup/tusk/storage"
)

// Class is how an object is stored.
type Class int

// The classes; see the package comment.
const (
	Encrypt Class = iota
	Seal
	Plain
	WALG
)

// Options configure a Store.
type Options struct {
	// Keys decrypt; the first encrypts (the symmetric mode). Either Keys
	// or Age.
	Keys []Key
	// Age holds age mode's recipients and identities (age.go).
	Age *AgeKeys
	// PlainHeader, in age mode, says how many of an object's first bytes
	// (at most 127; first holds up to its first 8 KiB) its envelope shows
	// in plain text, so that a host without an identity can read them.
	PlainHeader func(key string, first []byte) int
	// Classify says how the object under a key is stored.
	Classify func(key string) Class
	// Hidden are the top-level fields of a Seal object kept only in its
	// encrypted copy.
	Hidden []string
	// Hint ends every "cannot be decrypted" error: which settings give
	// the keys, e.g. " (keys from TUSK_ENCRYPTION_KEY_FILE)".
	Hint string
}

// Store is the decorator.
type Store struct {
	inner storage.Storage
	o     Options
}

// New wraps inner.
func New(inner storage.Storage, o Options) (*Store, error) {
	if (len(o.Keys) == 0) == (o.Age == nil) {
		return nil, errors.New("crypt: give either keys or age keys")
	}
	if o.Classify == nil {
		o.Classify = func(string) Class { return Encrypt }
	}
	return &Store{inner: inner, o: o}, nil
}

// Unwrap implements storage.Unwrapper.
func (s *Store) Unwrap() storage.Storage { return s.inner }

// Kind is the kind of encryption, as the repository marker names it.
func (s *Store) Kind() string {
	if s.o.Age != nil {
		return storage.EncryptionAge
	}
	return storage.EncryptionSecretstream
}

// WriteIDs name what encrypts: the id of the key that writes, or the age
// recipients; none for a host with only age identities.
func (s *Store) WriteIDs() []string {
	if a := s.o.Age; a != nil {
		return a.RecipientIDs
	}
	return []string{s.o.Keys[0].ID}
}

// KeyIDs name every key given: the ids of the symmetric keys, the writing
// one first; in age mode the recipients, then the recipients of the
// identities.
func (s *Store) KeyIDs() []string {
	if a := s.o.Age; a != nil {
		return append(append([]string{}, a.RecipientIDs...), a.IdentityIDs...)
	}
	ids := make([]string, len(s.o.Keys))
	for i, k := range s.o.Keys {
		ids[i] = k.ID
	}
	return ids
}

// CanRead reports whether the store can decrypt.
func (s *Store) CanRead() bool { return s.o.Age == nil || s.o.Age.CanRead() }

// sealStream is the stored form of r, the object under name.
func (s *Store) sealStream(r io.Reader, name string) (io.Reader, error) {
	a := s.o.Age
	if a == nil && s.o.Classify(name) == WALG {
		return newSealer(r, &s.o.Keys[0].key, nil), nil
	}
	if a == nil {
		return newSealer(r, &s.o.Keys[0].key, []byte(name)), nil
	}
	if !a.CanWrite() {
		return nil, fmt.Errorf("write %s: this host has only age identities, and writing needs the recipients%s", name, s.o.Hint)
	}
	sl := newSealer(r, &a.dataKey, []byte(name))
	sl.pre = func(first []byte) []byte {
		n := 0
		if s.o.PlainHeader != nil {
			n = s.o.PlainHeader(name, first)
		}
		if n < 0 || n > len(first) || n > plainSlot-1 {
			n = 0
		}
		return a.prefix(first[:n])
	}
	return sl, nil
}

// openStream is the plaintext of r, the stored object under name.
func (s *Store) openStream(r io.Reader, name string) (io.Reader, error) {
	a := s.o.Age
	if a == nil && s.o.Classify(name) == WALG {
		o := newOpener(r, name, s.o.Keys, s.o.Hint)
		o.walg = true
		return o, nil
	}
	if a == nil {
		return newOpener(r, name, s.o.Keys, s.o.Hint), nil
	}
	e, err := readEnvelope(r, name)
	if err != nil {
		return nil, err
	}
	if !a.CanRead() {
		return &plainHeaderReader{plain: e.plain, name: name, hint: s.o.Hint}, nil
	}
	dk, err := a.unwrap(e, name, s.o.Hint)
	if err != nil {
		return nil, err
	}
	o := newOpener(r, name, []Key{{key: dk}}, s.o.Hint)
	if len(e.plain) > 0 {
		o.expect = e.plain
	}
	return o, nil
}

// maxSealed bounds a Seal object held in memory (backup metadata is
// kilobytes; a backup of a million files in 64 MiB parts is far below it).
const maxSealed = 64 << 20

// class is how the object under key is stored in this store's mode.
func (s *Store) class(key string) Class {
	c := s.o.Classify(key)
	if c == WALG && s.o.Age != nil {
		return Plain
	}
	return c
}

// Put implements storage.Storage.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	switch s.class(key) {
	case Plain:
		return s.inner.Put(ctx, key, r)
	case Seal:
		b, err := io.ReadAll(io.LimitReader(r, maxSealed+1))
		if err != nil {
			return err
		}
		if len(b) > maxSealed {
			return fmt.Errorf("%s is over %d bytes, too large to seal", key, maxSealed)
		}
		out, err := s.sealJSON(b, key)
		if err != nil {
			return err
		}
		return s.inner.Put(ctx, key, bytes.NewReader(out))
	default:
		sr, err := s.sealStream(r, key)
		if err != nil {
			return err
		}
		return s.inner.Put(ctx, key, sr)
	}
}

// Get implements storage.Storage.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	switch s.class(key) {
	case Plain:
		return rc, nil
	case Seal:
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, 2*maxSealed))
		if err != nil {
			return nil, err
		}
		if !s.CanRead() {
			// A host with only recipients reads the plain fields, as
			// one without a key does.
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		orig, err := s.openJSON(b, key)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(orig)), nil
	default:
		pr, err := s.openStream(rc, key)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return &openedObject{Reader: pr, body: rc}, nil
	}
}

type openedObject struct {
	io.Reader
	body io.Closer
}

func (o *openedObject) Close() error { return o.body.Close() }

// Stat implements storage.Storage. An encrypted object's size is its
// plaintext's, so that sizes compare with what was written.
func (s *Store) Stat(ctx context.Context, key string) (storage.Object, error) {
	o, err := s.inner.Stat(ctx, key)
	if err == nil {
		o = s.plain(o)
	}
	return o, err
}

// List implements storage.Storage, with sizes as Stat has them.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	return s.inner.List(ctx, prefix, func(o storage.Object) error { return fn(s.plain(o)) })
}

// plain converts a stored size to the plaintext's. In age mode that is
// exact for objects written to the same recipients as this host's; a host
// with only identities shows stored sizes.
func (s *Store) plain(o storage.Object) storage.Object {
	if c := s.class(o.Key); c != Encrypt && c != WALG {
		return o
	}
	c := o.Size
	if a := s.o.Age; a != nil {
		if !a.CanWrite() {
			return o
		}
		c -= a.overhead()
	}
	if n, ok := PlainSize(c); ok {
		o.Size = n
	}
	return o
}

// Delete implements storage.Storage.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	return s.inner.Delete(ctx, keys...)
}

// SealedField is the field of a Seal object that holds its encrypted
// original.
const SealedField = "tusk_sealed"

// sealJSON stores the JSON object b as its plain projection plus its
// sealed original.
func (s *Store) sealJSON(b []byte, name string) ([]byte, error) {
	proj, err := project(b, s.o.Hidden)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", name, err)
	}
	sr, err := s.sealStream(bytes.NewReader(b), name)
	if err != nil {
		return nil, err
	}
	var ct bytes.Buffer
	if _, err := io.Copy(&ct, sr); err != nil {
		return nil, err
	}
	return withSealed(proj, base64.StdEncoding.EncodeToString(ct.Bytes())), nil
}

// openJSON checks a stored Seal object and returns its original.
func (s *Store) openJSON(stored []byte, name string) ([]byte, error) {
	hidden, hint := s.o.Hidden, s.o.Hint
	fields, err := topFields(stored)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: it is not a JSON object (%v)", name, ErrDamaged, err)
	}
	if len(fields) == 0 || fields[len(fields)-1].name != SealedField {
		return nil, fmt.Errorf("%s %w: it is stored in plain text, without its encrypted copy (was it written without the encryption key?)%s", name, ErrDecrypt, hint)
	}
	var sealed string
	if err := json.Unmarshal(fields[len(fields)-1].raw, &sealed); err != nil {
		return nil, fmt.Errorf("%s: %w: its %s field is not a string", name, ErrDamaged, SealedField)
	}
	ct, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: its %s field is not base64", name, ErrDamaged, SealedField)
	}
	pr, err := s.openStream(bytes.NewReader(ct), name)
	if err != nil {
		return nil, err
	}
	orig, err := io.ReadAll(pr)
	if err != nil {
		return nil, err
	}
	proj, err := project(orig, hidden)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: its encrypted copy is not a JSON object", name, ErrDamaged)
	}
	if !bytes.Equal(withSealed(proj, sealed), stored) {
		return nil, fmt.Errorf("%s: %w: its plain fields differ from its encrypted copy, so they were changed after tusk wrote them", name, ErrDamaged)
	}
	return orig, nil
}

type field struct {
	name string
	raw  json.RawMessage
}

// topFields returns a JSON object's top-level fields in order.
func topFields(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("no object")
	}
	var fields []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var f field
		f.name, _ = t.(string)
		if err := dec.Decode(&f.raw); err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("bytes after the object")
	}
	return fields, nil
}

// project is the JSON object b without the hidden fields, compacted: the
// same bytes for the same b, which is what openJSON compares.
func project(b []byte, hidden []string) ([]byte, error) {
	fields, err := topFields(b)
	if err != nil {
		return nil, err
	}
	out := []byte{'{'}
	for _, f := range fields {
		if f.name == SealedField || slices.Contains(hidden, f.name) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(f.name)
		out = append(append(out, name...), ':')
		var c bytes.Buffer
		if err := json.Compact(&c, f.raw); err != nil {
			return nil, err
		}
		out = append(out, c.Bytes()...)
	}
	return append(out, '}'), nil
}

func withSealed(proj []byte, sealed string) []byte {
	out := append([]byte{}, proj[:len(proj)-1]...)
	if len(proj) > 2 {
		out = append(out, ',')
	}
	return append(out, fmt.Sprintf("%q:%q}\n", SealedField, sealed)...)
}
