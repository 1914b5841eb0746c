package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tusk-backup/tusk/internal/testenv"
)

// pgbackrestStanza is the stanza every pgBackRest repository here holds.
const pgbackrestStanza = "bench"

// requirePgBackRest returns the pgbackrest binary and its version line
// ("pgBackRest 2.45"), or skips (fails under TUSK_TEST_REQUIRE) without it.
func requirePgBackRest(b *testing.B) (path, version string) {
	b.Helper()
	path, err := exec.LookPath("pgbackrest")
	testenv.Require(b, "pgbackrest", err == nil,
		"no pgbackrest in PATH; internal/bench/install-deps.sh installs it (apt-get install -y pgbackrest)")
	version, err = pgbackrestVersionOf(path)
	if err != nil {
		b.Fatal(err)
	}
	return path, version
}

// pgbackrestVersionOf returns the output of "pgbackrest version".
func pgbackrestVersionOf(path string) (string, error) {
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		return "", fmt.Errorf("pgbackrest version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// pgbackrestRepo is a fresh pgBackRest configuration with a posix repository,
// its stanza created, for the archive site's cluster.
type pgbackrestRepo struct {
	dir     string // holds pgbackrest.conf, repo/, spool/, lock/, log/
	conf    string
	command string // the archive_command
	s3      *testenv.MinIO
	prefix  string // the repository's path in the bucket, for S3
}

type pgbackrestOptions struct {
	Async    bool
	Compress string // compress-type: lz4, gz, ...
	// S3, when set, is the repository: a MinIO serving HTTPS (pgBackRest
	// 2.45 speaks S3 only over HTTPS), under the prefix Prefix.
	S3     *testenv.MinIO
	Prefix string
}

// String lists the settings that differ between the variants.
func (o pgbackrestOptions) String() string {
	s := "compress-type=" + o.Compress
	if o.Async {
		s += " archive-async=y process-max=2"
	}
	if o.S3 != nil {
		s += " repo1-type=s3 repo1-s3-uri-style=path repo1-storage-ca-file=$CA"
	}
	return s
}

func newPgBackRestRepo(b *testing.B, bin string, site *archiveSite, opts pgbackrestOptions) *pgbackrestRepo {
	b.Helper()
	dir := testenv.ServerTempDir(b)
	for _, sub := range []string{"repo", "spool", "lock", "log"} {
		if err := mkdirOwned(filepath.Join(dir, sub), 0o750, site.owner); err != nil {
			b.Fatal(err)
		}
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "[global]\n")
	if m := opts.S3; m != nil {
		fmt.Fprintf(&conf, "repo1-type=s3\nrepo1-path=/%s\nrepo1-s3-bucket=%s\nrepo1-s3-endpoint=127.0.0.1\nrepo1-storage-port=%d\n",
			strings.Trim(opts.Prefix, "/"), m.Bucket, m.Port())
		fmt.Fprintf(&conf, "repo1-s3-region=%s\nrepo1-s3-key=%s\nrepo1-s3-key-secret=%s\nrepo1-s3-uri-style=path\nrepo1-storage-ca-file=%s\n",
			m.Region, m.AccessKey, m.SecretKey, m.CAFile)
	} else {
		fmt.Fprintf(&conf, "repo1-type=posix\nrepo1-path=%s\n", filepath.Join(dir, "repo"))
	}
	fmt.Fprintf(&conf, "lock-path=%s\nspool-path=%s\nlog-path=%s\n",
		filepath.Join(dir, "lock"), filepath.Join(dir, "spool"), filepath.Join(dir, "log"))
	fmt.Fprintf(&conf, "log-level-console=warn\nlog-level-stderr=warn\nlog-level-file=off\n")
	fmt.Fprintf(&conf, "compress-type=%s\n", opts.Compress)
	if opts.Async {
		fmt.Fprintf(&conf, "archive-async=y\nprocess-max=2\n")
	}
	fmt.Fprintf(&conf, "\n[%s]\npg1-path=%s\n", pgbackrestStanza, site.pg.DataDir)
	r := &pgbackrestRepo{dir: dir, conf: filepath.Join(dir, "pgbackrest.conf"), s3: opts.S3, prefix: strings.Trim(opts.Prefix, "/")}
	if err := os.WriteFile(r.conf, []byte(conf.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	r.command = fmt.Sprintf("%s --config=%s --stanza=%s archive-push %%p", bin, r.conf, pgbackrestStanza)

	// The cluster is not running: stanza-create reads pg_control only.
	cmd := site.shell(b.Context(), fmt.Sprintf("%s --config=%s --stanza=%s --no-online stanza-create",
		bin, r.conf, pgbackrestStanza), nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pgbackrest stanza-create: %v\n%s\nconfig:\n%s", err, out, conf.String())
	}
	return r
}

// settle waits for pgBackRest's background archive-push to exit.
func (r *pgbackrestRepo) settle(b *testing.B) {
	b.Helper()
	if err := waitUnlocked(filepath.Join(r.dir, "lock"), time.Minute); err != nil {
		b.Fatalf("pgbackrest async archive-push still running: %v", err)
	}
}

// archived returns the names of the files in the repository's archive.
func (r *pgbackrestRepo) archived(b *testing.B) []string {
	b.Helper()
	if r.s3 != nil {
		names, _ := minioObjects(b, r.s3, r.prefix+"/archive/"+pgbackrestStanza+"/")
		return names
	}
	names, err := treeNames(filepath.Join(r.dir, "repo", "archive", pgbackrestStanza))
	if err != nil {
		b.Fatal(err)
	}
	return names
}

func (r *pgbackrestRepo) size(b *testing.B) int64 {
	b.Helper()
	if r.s3 != nil {
		_, n := minioObjects(b, r.s3, r.prefix+"/archive/"+pgbackrestStanza+"/")
		return n
	}
	n, err := treeSize(filepath.Join(r.dir, "repo", "archive", pgbackrestStanza))
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func (r *pgbackrestRepo) remove(b *testing.B) {
	b.Helper()
	if err := os.RemoveAll(r.dir); err != nil {
		b.Fatal(err)
	}
}
