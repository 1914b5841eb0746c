package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// tuskRepo is a fresh, empty tusk repository: a local folder or a prefix in
// a MinIO bucket.
type tuskRepo struct {
	url    string
	env    []string // for tusk: TUSK_REPO, TUSK_SPOOL_DIR, and AWS_* for MinIO
	spool  string
	folder string         // for a folder repository
	minio  *testenv.MinIO // for a MinIO repository
	prefix string
}

// newTuskFolderRepo makes an empty folder repository that the server user
// can write, with its own spool folder. The codec is tusk's default.
func newTuskFolderRepo(b *testing.B) *tuskRepo {
	b.Helper()
	r := &tuskRepo{folder: testenv.ServerTempDir(b), spool: testenv.ServerTempDir(b)}
	r.url = "file://" + r.folder
	r.env = []string{"TUSK_REPO=" + r.url, "TUSK_SPOOL_DIR=" + r.spool}
	return r
}

// newTuskMinIORepo uses prefix (which must be unused) in m's bucket.
func newTuskMinIORepo(b *testing.B, m *testenv.MinIO, prefix string) *tuskRepo {
	b.Helper()
	r := &tuskRepo{minio: m, prefix: prefix, spool: testenv.ServerTempDir(b)}
	r.url = m.URL(prefix)
	r.env = append([]string{"TUSK_REPO=" + r.url, "TUSK_SPOOL_DIR=" + r.spool}, m.Env()...)
	return r
}

// objects returns the base names and total size of the repository's objects.
func (r *tuskRepo) objects(b *testing.B) (names []string, size int64) {
	b.Helper()
	if r.minio == nil {
		names, err := treeNames(r.folder)
		if err != nil {
			b.Fatal(err)
		}
		size, err := treeSize(r.folder)
		if err != nil {
			b.Fatal(err)
		}
		return names, size
	}
	return minioObjects(b, r.minio, r.prefix)
}

// backupsSize is the size of the repository's base backups, WAL left out.
func (r *tuskRepo) backupsSize(b *testing.B) int64 {
	b.Helper()
	if r.minio == nil {
		size, err := treeSize(filepath.Join(r.folder, "backups"))
		if errors.Is(err, fs.ErrNotExist) {
			return 0 // no backup yet
		}
		if err != nil {
			b.Fatal(err)
		}
		return size
	}
	_, size := minioObjects(b, r.minio, r.prefix+"backups/")
	return size
}

// minioObjects returns the base names and total size of the objects under
// prefix in m's bucket.
func minioObjects(b *testing.B, m *testenv.MinIO, prefix string) (names []string, size int64) {
	b.Helper()
	p := s3.NewListObjectsV2Paginator(m.Client(), &s3.ListObjectsV2Input{
		Bucket: aws.String(m.Bucket),
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(b.Context())
		if err != nil {
			b.Fatalf("list %s: %v", m.URL(prefix), err)
		}
		for _, o := range page.Contents {
			names = append(names, path.Base(aws.ToString(o.Key)))
			size += aws.ToInt64(o.Size)
		}
	}
	return names, size
}

// verify checks that the repository holds every segment, and that the first,
// a middle and the last segment come back from tusk wal-fetch byte for byte.
// It returns the repository's size.
func (r *tuskRepo) verify(b *testing.B, tusk string, site *archiveSite, c *corpus) int64 {
	b.Helper()
	names, size := r.objects(b)
	if missing := missingSegments(c.Segments, names); len(missing) > 0 {
		b.Fatalf("%s lacks %d of %d segments after wal-push, e.g. %s", r.url, len(missing), len(c.Segments), missing[0])
	}
	dest := testenv.ServerTempDir(b)
	n := len(c.Segments)
	for _, name := range []string{c.Segments[0], c.Segments[n/2], c.Segments[n-1]} {
		out := filepath.Join(dest, name)
		cmd := site.pg.RunAsOwner(b.Context(), tusk, "wal-fetch", name, out)
		cmd.Env = append(hermetic(cmd.Env), r.env...)
		cmd.Env = append(cmd.Env, "TUSK_WAL_PREFETCH=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tusk wal-fetch %s from %s: %v\n%s", name, r.url, err, msg)
		}
		if err := sameFile(out, c.segmentPath(name)); err != nil {
			b.Fatalf("tusk wal-fetch %s from %s: %v", name, r.url, err)
		}
		os.Remove(out)
	}
	return size
}

// sameFile reports an error unless the two files have the same bytes.
func sameFile(got, want string) error {
	g, err := os.ReadFile(got)
	if err != nil {
		return err
	}
	w, err := os.ReadFile(want)
	if err != nil {
		return err
	}
	if !bytes.Equal(g, w) {
		return fmt.Errorf("%s differs from %s (%d and %d bytes)", got, want, len(g), len(w))
	}
	return nil
}
