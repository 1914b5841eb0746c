package basebackup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCRC32CCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {100, 3}, {4096, 70000}, {70001, 1 << 20}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		want := crc32.Checksum(append(append([]byte{}, a...), b...), castagnoli)
		got := crc32cCombine(crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli), int64(len(b)))
		if got != want {
			t.Errorf("combine of %d and %d bytes: %08x, want %08x", n[0], n[1], got, want)
		}
	}
}

// TestCheckManifestEncodedPath: PostgreSQL lists a file whose name is not
// valid UTF-8 under Encoded-Path (hex) instead of Path.
func TestCheckManifestEncodedPath(t *testing.T) {
	name := "base/1/caf\xe9"
	body := []byte("content")
	crc := crc32.Checksum(body, castagnoli)
	files := &fileSums{files: map[string]*fileSum{}}
	if err := files.add(name, &tar.Header{Name: name}, int64(len(body)), crc); err != nil {
		t.Fatal(err)
	}
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], crc)
	manifest := func(sum string) []byte {
		head := fmt.Sprintf(`{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Encoded-Path": "%s", "Size": %d, "Last-Modified": "2026-11-27 12:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "%s" }
],
`, hex.EncodeToString([]byte(name)), len(body), sum)
		h := sha256.Sum256([]byte(head))
		return []byte(head + fmt.Sprintf("\"Manifest-Checksum\": \"%x\"}\n", h))
	}
	if errs := checkManifest(manifest(hex.EncodeToString(le[:])), files, "7000000000000000001"); len(errs) != 0 {
		t.Fatalf("a matching Encoded-Path entry: %v", errs)
	}
	if errs := checkManifest(manifest("00000000"), files, ""); len(errs) != 1 || !strings.Contains(errs[0].Error(), "CRC32C") {
		t.Fatalf("a wrong checksum under Encoded-Path: %v, want one CRC32C error", errs)
	}
}

// TestCheckManifestSystemID: a version 2 manifest (PostgreSQL 17) names its
// cluster, which must be the one the metadata records.
func TestCheckManifestSystemID(t *testing.T) {
	manifest := func(head string) []byte {
		h := sha256.Sum256([]byte(head))
		return []byte(head + fmt.Sprintf("\"Manifest-Checksum\": \"%x\"}\n", h))
	}
	v2 := manifest("{ \"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7443201857254321234,\n\"Files\": [],\n")
	files := &fileSums{files: map[string]*fileSum{}}
	if errs := checkManifest(v2, files, "7443201857254321234"); len(errs) != 0 {
		t.Errorf("the metadata's own cluster: %v", errs)
	}
	if errs := checkManifest(v2, files, "7443201857254321235"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "System-Identifier") {
		t.Errorf("another cluster: %v, want one System-Identifier error", errs)
	}
}
