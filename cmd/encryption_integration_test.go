package cmd_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tusk-backup/tusk/basebackup"
	"github.com/tusk-backup/tusk/crypt"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// secretMarker is written into a table; with compression none, an object
// that holds it was stored unencrypted.
const secretMarker = "tusk-secret-marker-7f3a9c"

// keyFile writes a random hex key into a file the server's user can read
// and returns its path.
func keyFile(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	p := filepath.Join(testenv.ServerTempDir(t), "tusk.key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// without returns env without the settings named by prefixes.
func without(env []string, prefixes ...string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// objectBytes reads every object of repo as stored.
func objectBytes(t *testing.T, repo repository, key string) []byte {
	t.Helper()
	if repo.dir != "" {
		b, err := os.ReadFile(filepath.Join(repo.dir, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out, err := repo.minio.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(repo.minio.Bucket), Key: aws.String("repo/" + key)})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ageKeyFiles writes an age identity file and its recipients file where
// the server's user can read them.
func ageKeyFiles(t *testing.T) (recipients, identity string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	dir := testenv.ServerTempDir(t)
	recipients, identity = filepath.Join(dir, "recipients.txt"), filepath.Join(dir, "identity.txt")
	os.WriteFile(recipients, []byte(id.Recipient().String()+"\n"), 0o644)
	os.WriteFile(identity, []byte(id.String()+"\n"), 0o644)
	return recipients, identity
}

// TestIntegrationEncryptionCycle: with a symmetric key, and in age mode
// with only the recipients on the database host and the identity where
// the restore runs, the whole cycle (archiving under load, a backup and a
// second one, incremental where the host can read its parent's manifest, a
// restore to a moment) is exact, on a folder and on MinIO, and no stored
// object holds a table's plaintext (compression none) or a file's name;
// without a key, backups still list.
func TestIntegrationEncryptionCycle(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for _, mode := range []string{"key", "age"} {
		for kind, repo := range repos(t) {
			t.Run(mode+"/"+kind, func(t *testing.T) {
				t.Parallel()
				// writer: the database host's settings; reader: the
				// restore host's.
				var writer, reader []string
				if mode == "key" {
					key := keyFile(t)
					writer = []string{"TUSK_ENCRYPTION_KEY_FILE=" + key, "TUSK_ENCRYPTION_KEY_TRANSFORM=hex"}
					reader = writer
				} else {
					recipients, identity := ageKeyFiles(t)
					writer = []string{"TUSK_AGE_RECIPIENTS=" + recipients}
					reader = append(slices.Clone(writer), "TUSK_AGE_IDENTITY_FILE="+identity)
				}
				c := startCluster(t, repo, testenv.PostgresOptions{Env: append(slices.Clone(writer),
					"TUSK_COMPRESSION=none", "TUSK_BACKUP_PART_SIZE=4MiB", "TUSK_DELTA_MAX_STEPS=1")})
				pg, env := c.pg, c.env
				restoreEnv := append(without(env, "TUSK_AGE_", "TUSK_ENCRYPTION_"), reader...)
				pg.SQL(t, "CREATE TABLE secrets AS SELECT g, '"+secretMarker+"' AS s FROM generate_series(1, 20000) g")
				pgbench(t, pg, "-i", "-s", "2", "-q")
				load := pg.RunAsOwner(t.Context(), filepath.Join(pg.BinDir, "pgbench"), "-T", "3", "-c", "2", "-n")
				if err := load.Start(); err != nil {
					t.Fatal(err)
				}
				r := run(t, bin, env, "backup-push", pg.DataDir)
				load.Wait()
				wantExit(t, r, 0)
				// A second backup: an incremental, whose parent's manifest
				// is read back through the encryption and whose chain the
				// restore composes; in age mode the database host cannot
				// read that manifest, and says so.
				pgbench(t, pg, "-t", "300", "-c", "2", "-n")
				r = run(t, bin, env, "backup-push", pg.DataDir)
				wantExit(t, r, 0)
				if mode == "age" && !strings.Contains(r.stderr, "this host has only age recipients") {
					t.Errorf("backup-push with only recipients did not say why it took a full backup:\n%s", r.stderr)
				}
				pgbench(t, pg, "-t", "300", "-c", "2", "-n")
				pg.SQL(t, "INSERT INTO secrets VALUES (0, '"+secretMarker+" late')")
				sum := pg.SQL(t, "SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) FROM pgbench_accounts")
				lsn := pg.SQL(t, "SELECT pg_current_wal_insert_lsn()")
				pgbench(t, pg, "-t", "300", "-c", "2", "-n")
				last := archiveWAL(t, pg)

				keys := repo.keys(t)
				for _, k := range keys {
					b := objectBytes(t, repo, k)
					if bytes.Contains(b, []byte(secretMarker)) {
						t.Errorf("object %s holds the table's plaintext", k)
					}
					if bytes.Contains(b, []byte("pg_control")) || bytes.Contains(b, []byte("PG_VERSION")) {
						t.Errorf("object %s holds a data directory's file name", k)
					}
				}
				if t.Failed() {
					t.Fatalf("objects: %v", keys)
				}

				// Listing needs no key; restoring does.
				wantParent := func(bs []basebackup.Meta) string {
					if mode == "age" {
						return ""
					}
					return bs[0].Name
				}
				bs := listBackups(t, bin, without(env, "TUSK_AGE_", "TUSK_ENCRYPTION_"))
				if len(bs) != 2 || bs[0].Sealed == "" || len(bs[0].Parts) != 0 || bs[1].Parent != wantParent(bs) {
					t.Fatalf("backup-list without a key: %+v", bs)
				}
				if got := listBackups(t, bin, restoreEnv); len(got) != 2 || got[1].Sealed != "" || len(got[1].Parts) == 0 || got[1].Parent != wantParent(got) {
					t.Fatalf("backup-list with the key: %+v", got)
				}
				if mode == "age" {
					// The database host tells a segment it already
					// archived by the plain header, and cannot restore.
					seg := filepath.Join(testenv.ServerTempDir(t), last)
					wantExit(t, run(t, bin, restoreEnv, "wal-fetch", last, seg), 0)
					if r := run(t, bin, env, "wal-push", seg); r.code != 0 || !strings.Contains(r.stderr, "already archived") {
						t.Errorf("wal-push of an archived segment with only the recipients: exit %d\n%s", r.code, r.stderr)
					}
					dest := filepath.Join(testenv.ServerTempDir(t), "pgdata")
					if r := run(t, bin, env, "backup-fetch", dest, "LATEST"); r.code == 0 || !strings.Contains(r.stderr, "reading needs an identity: set TUSK_AGE_IDENTITY_FILE") {
						t.Errorf("backup-fetch with only the recipients: exit %d\n%s", r.code, r.stderr)
					}
				}
				recoverExactly(t, bin, restoreEnv, pg, "LATEST",
					"SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) FROM pgbench_accounts", sum,
					"--target-lsn", lsn)
			})
		}
	}
}

// TestIntegrationEncryptionRefusals: a missing key, a wrong key, a damaged,
// cut or swapped object, a plaintext push into an encrypted repository and
// an encrypted push into a plain one are each one clear sentence and a
// non-zero exit (200 from wal-fetch during archive recovery), with nothing
// restored or written.
func TestIntegrationEncryptionRefusals(t *testing.T) {
	bin := testenv.BuildTusk(t)
	repo := folderRepo(t)
	key := keyFile(t)
	c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_ENCRYPTION_KEY_FILE=" + key, "TUSK_ENCRYPTION_KEY_TRANSFORM=hex"}})
	pg, env := c.pg, c.env
	pgbench(t, pg, "-i", "-s", "1", "-q")
	wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
	first := archiveWAL(t, pg)
	pg.SQL(t, "CREATE TABLE t AS SELECT 1")
	second := archiveWAL(t, pg)

	keyless := without(env, "TUSK_ENCRYPTION_KEY")
	if r := run(t, bin, env, "check", "--no-server"); r.code != 0 || !strings.Contains(r.stdout, "objects are encrypted before they leave this host") {
		t.Errorf("check --no-server with the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, bin, keyless, "check", "--no-server"); r.code != 1 || !strings.Contains(r.stdout, "this repository is encrypted") {
		t.Errorf("check --no-server without the key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wrongKey := append(without(env, "TUSK_ENCRYPTION_KEY_FILE"), "TUSK_ENCRYPTION_KEY_FILE="+keyFile(t))
	// A key wal-g would refuse is refused the same way: a usage error.
	if r := run(t, bin, append(slices.Clone(keyless), "WALG_LIBSODIUM_KEY=too short"), "backup-list"); r.code != 2 || !strings.Contains(r.stderr, "the encryption key in WALG_LIBSODIUM_KEY is 9 bytes") {
		t.Errorf("a short key: exit %d\n%s", r.code, r.stderr)
	}
	// A data directory in archive recovery, for wal-fetch's exit code.
	recovering := testenv.ServerTempDir(t)
	os.WriteFile(filepath.Join(recovering, "recovery.signal"), nil, 0o600)
	inRecovery := func(env []string) []string {
		return append(without(env, "PGDATA", "TUSK_PGDATA"), "PGDATA="+recovering)
	}
	dest := filepath.Join(t.TempDir(), "seg")

	wantRefused := func(what string, r result, code int, says string) {
		t.Helper()
		// says may give alternatives, "a|b": an object of one message
		// fails its first message, which reads as "cannot be decrypted".
		said := false
		for _, alt := range strings.Split(says, "|") {
			said = said || strings.Contains(r.stderr, alt)
		}
		if r.code != code || !said {
			t.Errorf("%s: exit %d, want %d saying %q\n%s", what, r.code, code, says, r.stderr)
		}
		if _, err := os.Stat(dest); err == nil {
			t.Errorf("%s: wal-fetch wrote %s", what, dest)
		}
		t.Logf("%s: exit %d: %s", what, r.code, errorLine(t, r.stderr))
	}
	wantRefused("wal-fetch without the key", run(t, bin, inRecovery(keyless), "wal-fetch", first, dest), 200, "this repository is encrypted")
	wantRefused("wal-fetch with a wrong key", run(t, bin, inRecovery(wrongKey), "wal-fetch", first, dest), 200, "none of the keys given")
	restored := filepath.Join(testenv.ServerTempDir(t), "pgdata")
	wantRefused("backup-fetch without the key", run(t, bin, keyless, "backup-fetch", restored, "LATEST"), 1, "this repository is encrypted")
	wantRefused("backup-fetch with a wrong key", run(t, bin, wrongKey, "backup-fetch", restored, "LATEST"), 1, "none of the keys given")
	if _, err := os.Stat(restored); err == nil {
		t.Errorf("a refused backup-fetch created %s", restored)
	}

	// The objects of two segments.
	object := func(seg string) string {
		for _, k := range repo.keys(t) {
			if strings.Contains(k, "/"+seg) {
				return filepath.Join(repo.dir, filepath.FromSlash(k))
			}
		}
		t.Fatalf("no object for %s in %v", seg, repo.keys(t))
		return ""
	}
	a, b := object(first), object(second)
	orig, _ := os.ReadFile(b)
	swapped, _ := os.ReadFile(a)
	os.WriteFile(b, swapped, 0o600)
	wantRefused("a segment's object under another's name", run(t, bin, inRecovery(env), "wal-fetch", second, dest), 200, "stored under another name")
	damaged := append([]byte{}, orig...)
	damaged[len(damaged)/2] ^= 1
	os.WriteFile(b, damaged, 0o600)
	wantRefused("a flipped bit", run(t, bin, inRecovery(env), "wal-fetch", second, dest), 200, "encrypted object is damaged|cannot be decrypted")
	os.WriteFile(b, orig[:len(orig)-100], 0o600)
	wantRefused("a cut object", run(t, bin, inRecovery(env), "wal-fetch", second, dest), 200, "encrypted object is damaged|cannot be decrypted")
	os.WriteFile(b, orig, 0o600)
	wantExit(t, run(t, bin, inRecovery(env), "wal-fetch", second, dest), 0)

	// A plaintext push into the encrypted repository, and an encrypted one
	// into a plain repository.
	segFile := filepath.Join(testenv.ServerTempDir(t), second)
	if err := os.Rename(dest, segFile); err != nil {
		t.Fatal(err)
	}
	before := repo.keys(t)
	r := run(t, bin, keyless, "wal-push", segFile)
	if r.code == 0 || !strings.Contains(r.stderr, "this repository is encrypted") {
		t.Errorf("wal-push without the key: exit %d\n%s", r.code, r.stderr)
	}
	if after := repo.keys(t); !slices.Equal(before, after) {
		t.Errorf("a refused wal-push changed the repository: %v", after)
	}
	plain := folderRepo(t)
	wantExit(t, run(t, bin, plain.env, "wal-push", segFile), 0)
	before = plain.keys(t)
	r = run(t, bin, append(slices.Clone(plain.env), "TUSK_ENCRYPTION_KEY_FILE="+key, "TUSK_ENCRYPTION_KEY_TRANSFORM=hex"), "wal-push", segFile)
	if r.code == 0 || !strings.Contains(r.stderr, "this repository is not encrypted, but an encryption key is set") {
		t.Errorf("wal-push with a key into a plain repository: exit %d\n%s", r.code, r.stderr)
	}
	if after := plain.keys(t); !slices.Equal(before, after) {
		t.Errorf("a refused wal-push changed the plain repository: %v", after)
	}

	// A rotation: the new key first, the old one after it. The new key
	// writes (and the marker records it), both read.
	oldKey, _ := os.ReadFile(key)
	newKey := keyFile(t)
	newOnly, _ := os.ReadFile(newKey)
	os.WriteFile(newKey, append(append([]byte{}, newOnly...), oldKey...), 0o644)
	rotated := append(without(env, "TUSK_ENCRYPTION_KEY_FILE"), "TUSK_ENCRYPTION_KEY_FILE="+newKey)
	pg.SQL(t, "CREATE TABLE after_rotation AS SELECT 1")
	third := pg.SQL(t, "SELECT pg_walfile_name(pg_current_wal_lsn())")
	pg.SQL(t, "SELECT pg_switch_wal()")
	waitArchived(t, pg, third)
	thirdFile := filepath.Join(testenv.ServerTempDir(t), third)
	wantExit(t, run(t, bin, env, "wal-fetch", third, thirdFile), 0)
	wantExit(t, run(t, bin, rotated, "wal-push", thirdFile), 0) // already archived; the marker now names the new key
	os.Remove(thirdFile)
	oldID, newID := keyID(t, oldKey), keyID(t, newOnly)
	if marker, _ := os.ReadFile(filepath.Join(repo.dir, "tusk-repository.json")); !strings.Contains(string(marker), `"key_ids":["`+oldID+`","`+newID+`"]`) {
		t.Errorf("after a push with the rotated keys the marker is %s, want key ids %s then %s", marker, oldID, newID)
	}
	wantExit(t, run(t, bin, rotated, "wal-fetch", first, dest), 0)
	os.Remove(dest)
	os.WriteFile(newKey, newOnly, 0o644)
	wantRefused("an old object with only the new key", run(t, bin, inRecovery(rotated), "wal-fetch", first, dest), 200, "cannot be decrypted with the key given")
}

// keyID is the id tusk gives the hex key in b.
func keyID(t *testing.T, b []byte) string {
	t.Helper()
	k, _, err := crypt.NewKey(strings.TrimSpace(string(b)), crypt.TransformHex)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}
