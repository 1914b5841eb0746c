package crypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Key is one symmetric key (32 bytes, secretstream's key size) and its id.
type Key struct {
	key [32]byte
	// ID names the key without revealing it: the first 8 bytes of
	// HMAC-SHA256(key, "tusk key id v1"), in hex. The repository marker
	// lists the ids of the keys that wrote into it, so that a wrong key is
	// one sentence before any object is read.
	ID string
}

// Key transforms, as wal-g's WALG_LIBSODIUM_KEY_TRANSFORM names them.
const (
	TransformNone   = "none"
	TransformHex    = "hex"
	TransformBase64 = "base64"
)

// minNoneKey is the shortest key wal-g accepts with transform none.
const minNoneKey = 25

// NewKey turns what the operator gave into a key, as wal-g does:
// transform hex and base64 (standard, padded) must decode to exactly 32
// bytes; none takes the text's bytes, refuses fewer than 25, pads 25 to 31
// with zero bytes and uses only the first 32 of a longer text (cut reports
// how many bytes were left unused, so that the caller can say so).
func NewKey(text, transform string) (k Key, cut int, err error) {
	var b []byte
	switch transform {
	case TransformHex:
		if b, err = hex.DecodeString(text); err != nil {
			return k, 0, errors.New("is not hex (TUSK_ENCRYPTION_KEY_TRANSFORM is hex)")
		}
	case TransformBase64:
		if b, err = base64.StdEncoding.DecodeString(text); err != nil {
			return k, 0, errors.New("is not standard base64 (TUSK_ENCRYPTION_KEY_TRANSFORM is base64)")
		}
	case TransformNone, "":
		if len(text) < minNoneKey {
			return k, 0, fmt.Errorf("is %d bytes; a key taken as it is (TUSK_ENCRYPTION_KEY_TRANSFORM none) needs at least %d, and 32 random bytes in hex (openssl rand -hex 32, with transform hex) are better", len(text), minNoneKey)
		}
		b = make([]byte, 32)
		copy(b, text)
		cut = max(0, len(text)-32)
	default:
		return k, 0, fmt.Errorf("has transform %q; TUSK_ENCRYPTION_KEY_TRANSFORM is hex, base64 or none", transform)
	}
	if len(b) != 32 {
		return k, 0, fmt.Errorf("decodes to %d bytes, not 32", len(b))
	}
	copy(k.key[:], b)
	mac := hmac.New(sha256.New, k.key[:])
	mac.Write([]byte("tusk key id v1"))
	k.ID = hex.EncodeToString(mac.Sum(nil)[:8])
	return k, cut, nil
}

// KeySource is where the keys come from: an inline key (one), a key file
// (one key per line, as wal-g's key path holds one), or both; the transform
// applies to every key.
type KeySource struct {
	Inline, InlineName string // the key and the setting that gave it
	File, FileName     string // the key file's path and the setting that named it
	Transform          string
}

// LoadKeys reads the keys: the inline key first, then the file's lines in
// order (blank lines and lines starting with # skipped). The first key
// encrypts what tusk writes; every key decrypts, so that after a rotation
// the old keys still read the objects they wrote. note is called once per
// key whose text is longer than the 32 bytes used.
//
// wal-g reads its key file as one key with the surrounding white space
// trimmed, which is what a one-line file gives here too.
func LoadKeys(src KeySource, note func(setting string, line, unused int)) ([]Key, error) {
	var keys []Key
	add := func(text, setting string, line int) error {
		k, cut, err := NewKey(text, src.Transform)
		if err != nil {
			where := setting
			if line > 0 {
				where = fmt.Sprintf("%s (%s, line %d)", setting, src.File, line)
			}
			return fmt.Errorf("the encryption key in %s %v", where, err)
		}
		if cut > 0 && note != nil {
			note(setting, line, cut)
		}
		keys = append(keys, k)
		return nil
	}
	if src.Inline != "" {
		if err := add(src.Inline, src.InlineName, 0); err != nil {
			return nil, err
		}
	}
	if src.File != "" {
		b, err := os.ReadFile(src.File)
		if err != nil {
			return nil, fmt.Errorf("read the encryption key file %s (%s): %v", src.File, src.FileName, unwrapPath(err))
		}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add(line, src.FileName, i+1); err != nil {
				return nil, err
			}
		}
		if len(keys) == 0 || (src.Inline != "" && len(keys) == 1) {
			return nil, fmt.Errorf("the encryption key file %s (%s) holds no key", src.File, src.FileName)
		}
	}
	return keys, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
