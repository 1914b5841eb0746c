package crypt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"filippo.io/age"
)

// Age mode is for hosts that should be able to write into the repository
// but not read it: the database host holds only age recipients (public
// keys), the hosts that restore hold the identities.
//
// An object is an envelope, then a secretstream exactly as in the
// symmetric mode, under a data key drawn at random once per process:
//
//	"TUSKAGE1"                     magic
//	uint16, big-endian             L
//	L bytes                        an age file (binary) whose plaintext is the 32-byte data key,
//	                               encrypted to every recipient
//	1 byte P, then 127 bytes       the object's first P plaintext bytes, zero padded:
//	                               its "plain header" (see Options.PlainHeader)
//	the secretstream               header, messages; the first message's additional data is the
//	                               object's key, and its plaintext starts with the plain header
//
// The plain header lets a host without an identity read what an object is
// without decrypting it: wal-push compares a segment with the one already
// archived under its name by tusk's WAL header (codec, size and checksum),
// as pgBackRest names its archived segments by their SHA-1. A reader with
// an identity checks that it equals the decrypted start, so a changed byte
// is an error. The envelope's size is the same for every object written to
// the same recipients, so stored sizes convert to plaintext sizes exactly.
const ageMagic = "TUSKAGE1"

// plainSlot is the room for the plain header, its length byte included.
const plainSlot = 128

// AgeKeys are age mode's keys: recipients write, identities read.
type AgeKeys struct {
	recipients []age.Recipient
	identities []age.Identity
	// RecipientIDs are the recipients, as age1... strings; IdentityIDs
	// the recipients of the identities (what the marker records: which
	// identities can read the repository).
	RecipientIDs, IdentityIDs []string

	dataKey  [32]byte
	envelope []byte // magic, L and the wrapped data key: the same in every object of this process

	mu     sync.Mutex
	opened map[[32]byte][32]byte // data keys unwrapped, by their envelope's SHA-256
}

// LoadAge reads a recipients file (age1... lines, # comments) and an
// identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes them);
// either may be "" but not both. recipientsName and identityName are the
// settings that named them, for error sentences.
func LoadAge(recipientsFile, recipientsName, identityFile, identityName string) (*AgeKeys, error) {
	k := &AgeKeys{opened: map[[32]byte][32]byte{}}
	if recipientsFile != "" {
		b, err := os.ReadFile(recipientsFile)
		if err != nil {
			return nil, fmt.Errorf("read the age recipients file %s (%s): %v", recipientsFile, recipientsName, unwrapPath(err))
		}
		if k.recipients, err = age.ParseRecipients(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("the age recipients file %s (%s) %s", recipientsFile, recipientsName, ageErr(err))
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				k.RecipientIDs = append(k.RecipientIDs, line)
			}
		}
		rand.Read(k.dataKey[:])
		var wrapped bytes.Buffer
		w, err := age.Encrypt(&wrapped, k.recipients...)
		if err != nil {
			return nil, fmt.Errorf("the age recipients file %s (%s): %v", recipientsFile, recipientsName, err)
		}
		w.Write(k.dataKey[:])
		if err := w.Close(); err != nil {
			return nil, err
		}
		if wrapped.Len() > 0xffff {
			return nil, fmt.Errorf("the age recipients file %s (%s) names too many recipients: the wrapped key is %d bytes, over 64 KiB", recipientsFile, recipientsName, wrapped.Len())
		}
		k.envelope = binary.BigEndian.AppendUint16(append([]byte{}, ageMagic...), uint16(wrapped.Len()))
		k.envelope = append(k.envelope, wrapped.Bytes()...)
	}
	if identityFile != "" {
		b, err := os.ReadFile(identityFile)
		if err != nil {
			return nil, fmt.Errorf("read the age identity file %s (%s): %v", identityFile, identityName, unwrapPath(err))
		}
		if k.identities, err = age.ParseIdentities(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("the age identity file %s (%s) %s", identityFile, identityName, ageErr(err))
		}
		for _, id := range k.identities {
			if r, ok := id.(interface{ Recipient() *age.X25519Recipient }); ok {
				k.IdentityIDs = append(k.IdentityIDs, r.Recipient().String())
			} else if r, ok := id.(interface{ Recipient() *age.HybridRecipient }); ok {
				k.IdentityIDs = append(k.IdentityIDs, r.Recipient().String())
			}
		}
	}
	if k.recipients == nil && k.identities == nil {
		return nil, errors.New("age mode needs a recipients file, an identity file or both")
	}
	return k, nil
}

func ageErr(err error) string {
	return "cannot be read: " + strings.TrimPrefix(err.Error(), "failed to ")
}

// CanRead reports whether the keys include an identity.
func (k *AgeKeys) CanRead() bool { return len(k.identities) > 0 }

// CanWrite reports whether the keys include recipients.
func (k *AgeKeys) CanWrite() bool { return len(k.recipients) > 0 }

// overhead is the bytes an object of this process has besides its
// secretstream; 0 when it writes nothing.
func (k *AgeKeys) overhead() int64 {
	if k.envelope == nil {
		return 0
	}
	return int64(len(k.envelope)) + plainSlot
}

// prefix is what goes before an object's secretstream, given the plain
// header it shows.
func (k *AgeKeys) prefix(plain []byte) []byte {
	out := make([]byte, 0, len(k.envelope)+plainSlot)
	out = append(out, k.envelope...)
	slot := make([]byte, plainSlot)
	slot[0] = byte(len(plain))
	copy(slot[1:], plain)
	return append(out, slot...)
}

// ErrNoIdentity is returned (wrapped) for an age-mode object read where
// only recipients are given: what it holds cannot be read there.
var ErrNoIdentity = errors.New("needs an age identity to be read")

// envelope is an object's envelope, read.
type envelope struct {
	wrapped []byte // the age file that wraps the data key
	plain   []byte // the plain header
}

// readEnvelope reads an object's envelope from r.
func readEnvelope(r io.Reader, name string) (envelope, error) {
	var e envelope
	head := make([]byte, len(ageMagic)+2)
	if n, err := fill(r, head); err != nil {
		return e, err
	} else if n < len(head) {
		return e, fmt.Errorf("%s %w: it is shorter than an age-mode object's envelope", name, ErrDecrypt)
	}
	if string(head[:len(ageMagic)]) != ageMagic {
		return e, fmt.Errorf("%s %w: it is not an age-mode object (no %s envelope)", name, ErrDecrypt, ageMagic)
	}
	e.wrapped = make([]byte, binary.BigEndian.Uint16(head[len(ageMagic):]))
	slot := make([]byte, plainSlot)
	for _, b := range [][]byte{e.wrapped, slot} {
		if n, err := fill(r, b); err != nil {
			return e, err
		} else if n < len(b) {
			return e, fmt.Errorf("%s: %w: its envelope is cut short", name, ErrDamaged)
		}
	}
	if int(slot[0]) > plainSlot-1 {
		return e, fmt.Errorf("%s: %w: its envelope's plain header is %d bytes, over %d", name, ErrDamaged, slot[0], plainSlot-1)
	}
	e.plain = slot[1 : 1+int(slot[0])]
	return e, nil
}

// unwrap returns the data key of an envelope, unwrapping it with the
// identities once per distinct envelope.
func (k *AgeKeys) unwrap(e envelope, name, hint string) ([32]byte, error) {
	id := sha256.Sum256(e.wrapped)
	k.mu.Lock()
	dk, ok := k.opened[id]
	k.mu.Unlock()
	if ok {
		return dk, nil
	}
	r, err := age.Decrypt(bytes.NewReader(e.wrapped), k.identities...)
	if err == nil {
		_, err = io.ReadFull(r, dk[:])
	}
	if err != nil {
		var none *age.NoIdentityMatchError
		if errors.As(err, &none) {
			return dk, fmt.Errorf("%s %w with the age identities given: it was written to other recipients%s", name, ErrDecrypt, hint)
		}
		return dk, fmt.Errorf("%s: %w: its wrapped data key does not decrypt (%v)", name, ErrDamaged, err)
	}
	k.mu.Lock()
	k.opened[id] = dk
	k.mu.Unlock()
	return dk, nil
}

// plainHeaderReader yields an object's plain header, then ErrNoIdentity:
// what a host without an identity can read of an object.
type plainHeaderReader struct {
	plain []byte
	name  string
	hint  string
}

func (p *plainHeaderReader) Read(b []byte) (int, error) {
	if len(p.plain) > 0 {
		n := copy(b, p.plain)
		p.plain = p.plain[n:]
		return n, nil
	}
	return 0, fmt.Errorf("%s %w, and this host has only recipients%s", p.name, ErrNoIdentity, p.hint)
}
