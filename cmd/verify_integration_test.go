package cmd_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tusk "github.com/tusk-backup/tusk/cmd"
	"github.com/tusk-backup/tusk/internal/testenv"
)

// TestIntegrationVerify: verify (and verify --deep, which checks every file
// against PostgreSQL's backup manifest) passes on a good backup, on the
// folder and on MinIO; then a flipped byte, a truncated part, a missing
// part and a missing WAL segment each make it fail, naming the object.
func TestIntegrationVerify(t *testing.T) {
	bin := testenv.BuildTusk(t)
	for kind, repo := range repos(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			// Many parts, files split across them.
			c := startCluster(t, repo, testenv.PostgresOptions{Env: []string{"TUSK_BACKUP_PART_SIZE=1MiB"}})
			pg, env := c.pg, c.env
			pg.SQL(t, "CREATE TABLESPACE ts LOCATION '"+testenv.ServerTempDir(t)+"'")
			pg.SQL(t, "CREATE TABLE in_ts TABLESPACE ts AS SELECT g FROM generate_series(1, 100000) g")
			pgbench(t, pg, "-i", "-s", "2", "-q")
			wantExit(t, run(t, bin, env, "backup-push", pg.DataDir), 0)
			archiveWAL(t, pg)

			for _, args := range [][]string{{"verify"}, {"verify", "LATEST", "--deep"}, {"verify", "--all", "--deep", "--json"}} {
				r := run(t, bin, env, args...)
				wantExit(t, r, 0)
				t.Logf("%v: %s", args, strings.TrimSpace(r.stdout))
			}
			r := run(t, bin, env, "verify", "--deep", "--json")
			if res := decode[[]tusk.VerifyResult](t, r); len(res) != 1 || !res[0].OK || res[0].WALSegments < 1 {
				t.Fatalf("verify --json:\n%s", r.stdout)
			}
			if kind != "folder" {
				return // damage is done to files; MinIO's objects are the same bytes
			}
			dir := repo.dir
			b := listBackups(t, bin, env)[0]
			part := filepath.Join(dir, filepath.FromSlash(b.Parts[len(b.Parts)/2].Key))
			seg := filepath.Join(dir, "wal", b.StartWAL[:16], b.StartWAL)
			orig, err := os.ReadFile(part)
			if err != nil {
				t.Fatal(err)
			}
			origSeg, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			flipped := append([]byte{}, orig...)
			flipped[len(flipped)/2] ^= 0x40
			for _, c := range []struct {
				name   string
				damage func()
				object string
			}{
				{"flipped byte", func() { os.WriteFile(part, flipped, 0o600) }, b.Parts[len(b.Parts)/2].Key},
				{"truncated part", func() { os.WriteFile(part, orig[:len(orig)/3], 0o600) }, b.Parts[len(b.Parts)/2].Key},
				{"missing part", func() { os.Remove(part) }, b.Parts[len(b.Parts)/2].Key},
				{"missing WAL segment", func() { os.Remove(seg) }, "wal/" + b.StartWAL[:16] + "/" + b.StartWAL},
				{"corrupt WAL segment", func() {
					os.WriteFile(seg, origSeg, 0o600)
					damageWALObject(t, seg)
				}, "wal/" + b.StartWAL[:16] + "/" + b.StartWAL},
			} {
				c.damage()
				r := run(t, bin, env, "verify", b.Name)
				if r.code != 1 || !strings.Contains(r.stdout, c.object) {
					t.Fatalf("%s: verify exit %d, want 1 naming %s\n%s%s", c.name, r.code, c.object, r.stdout, r.stderr)
				}
				t.Logf("%s: %s", c.name, strings.TrimSpace(r.stdout))
				if err := os.WriteFile(part, orig, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(seg, origSeg, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			wantExit(t, run(t, bin, env, "verify", b.Name, "--deep"), 0)
			// Damaged metadata: verify --all fails naming it, and
			// backup-fetch refuses it without writing anything.
			metaPath := filepath.Join(dir, "backups", b.Name+".json")
			origMeta, err := os.ReadFile(metaPath)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			json.Unmarshal(origMeta, &doc)
			delete(doc, "checksum")
			doc["parts"] = []any{}
			noParts, _ := json.MarshalIndent(doc, "", "  ")
			for _, c := range []struct {
				name, content, want string
			}{
				{"a changed byte", strings.Replace(string(origMeta), `"permanent": false`, `"permanent": true `, 1), "does not match its checksum"},
				{"no parts, no checksum", string(noParts), "lists no part of the data directory"},
				{"not JSON", "{", "is not valid JSON"},
			} {
				os.WriteFile(metaPath, []byte(c.content), 0o600)
				r := run(t, bin, env, "verify", "--all")
				if r.code != 1 || !strings.Contains(r.stdout, "backups/"+b.Name+".json") || !strings.Contains(r.stdout, c.want) {
					t.Fatalf("%s: verify --all exit %d, want 1 naming the metadata and %q\n%s%s", c.name, r.code, c.want, r.stdout, r.stderr)
				}
				dest := filepath.Join(t.TempDir(), "restore")
				r = run(t, bin, env, "backup-fetch", dest, b.Name)
				if line := errorLine(t, r.stderr); r.code == 0 || !strings.Contains(line, c.want) {
					t.Fatalf("%s: backup-fetch exit %d: %s", c.name, r.code, r.stderr)
				}
				if _, err := os.Stat(dest); err == nil {
					t.Fatalf("%s: backup-fetch of damaged metadata wrote %s", c.name, dest)
				}
				t.Logf("%s: %s", c.name, errorLine(t, r.stderr))
			}
			os.WriteFile(metaPath, origMeta, 0o600)
			for _, args := range [][]string{{"verify", "no_such_backup"}, {"verify", "../x"}, {"verify", "a", "b"}, {"verify", "x", "--all"}} {
				r := run(t, bin, env, args...)
				if r.code == 0 {
					t.Fatalf("%v: exit 0", args)
				}
				t.Logf("%v: exit %d: %s", args, r.code, errorLine(t, r.stderr))
			}
		})
	}
}
