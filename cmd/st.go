package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusk-backup/tusk/archive"
	"github.com/tusk-backup/tusk/storage"
	"github.com/tusk-backup/tusk/wal"
)

// newStCmd is wal-g's st: the repository's objects, by key, through tusk's
// storage (so the guard and encryption apply as to every command).
func newStCmd(root *rootOpts) *cobra.Command {
	var target string
	c := &cobra.Command{
		Use:   "st",
		Short: "Storage tools: list, read, write and remove the repository's objects by key (wal-g's st)",
		Long: `st works on the repository's objects by key, as wal-g's st does, through tusk's
storage: in an encrypted repository what st reads is decrypted and what it
writes encrypted, with the same keys as every command.

ls, cat and get only read. put and rm refuse the keys tusk manages (wal/,
backups/ and the marker tusk-repository.json) and wal-g's (basebackups_005/,
wal_005/), where an object written or removed by hand would corrupt backups
or the archive without a word: use wal-push, backup-push and delete there.`,
		Args: exactArgs(0, "a subcommand: ls, cat, get, put or rm"),
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.PersistentFlags().StringVar(&target, "target", "", "wal-g's storage to work on: tusk has one repository, so only default or all")
	c.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		switch target {
		case "", "default", "all":
			return nil
		}
		return usagef(fmt.Errorf("--target %q names a storage tusk does not have: tusk has one repository (TUSK_REPO), so use default or all, or leave --target out", target))
	}
	c.AddCommand(newStLsCmd(root), newStCatCmd(root), newStGetCmd(root), newStPutCmd(root), newStRmCmd(root))
	return c
}

// stKey is an object key as st's arguments give it: without a leading
// slash (wal-g's st takes "/" for the root).
func stKey(s string) string { return strings.TrimLeft(s, "/") }

func newStLsCmd(root *rootOpts) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List the objects and folders under PREFIX (wal-g's columns: type, size, last modified, name)",
		Args:  rangeArgs(0, 1, "at most one folder"),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, _, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				if prefix = stKey(args[0]); prefix != "" && !strings.HasSuffix(prefix, "/") {
					prefix += "/"
				}
			}
			var rows []stRow
			err = st.List(c.Context(), prefix, func(o storage.Object) error {
				rows = stAdd(rows, prefix, o, recursive)
				return nil
			})
			if err != nil {
				return describeStorageErr(diagnose(c.Context(), st, err), cfg)
			}
			return printStRows(root.stdout, rows)
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "list every object under PREFIX, not only its own and its folders")
	return c
}

// stRow is one line of st ls.
type stRow struct {
	dir  bool
	size int64
	mod  time.Time
	name string
}

// stAdd adds object o, listed under prefix, to rows: as itself if it is
// directly under prefix (or recursive), else as its folder once.
func stAdd(rows []stRow, prefix string, o storage.Object, recursive bool) []stRow {
	rel := strings.TrimPrefix(o.Key, prefix)
	if i := strings.IndexByte(rel, '/'); i >= 0 && !recursive {
		dir := rel[:i+1]
		if n := len(rows); n > 0 && rows[n-1].dir && rows[n-1].name == dir {
			return rows
		}
		return append(rows, stRow{dir: true, name: dir})
	}
	return append(rows, stRow{size: o.Size, mod: o.ModTime, name: rel})
}

func printStRows(w io.Writer, rows []stRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "type\tsize\tlast modified\tname")
	for _, r := range rows {
		kind := "obj"
		if r.dir {
			kind = "dir"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", kind, r.size, r.mod.UTC(), r.name)
	}
	return tw.Flush()
}

func newStCatCmd(root *rootOpts) *cobra.Command {
	var decompress, decrypt bool
	c := &cobra.Command{
		Use:   "cat KEY",
		Short: "Write an object to standard output (--decompress: a WAL object's content)",
		Args:  exactArgs(1, "the key of an object"),
		RunE: func(c *cobra.Command, args []string) error {
			return stRead(c, root, stKey(args[0]), root.stdout, decompress)
		},
	}
	c.Flags().BoolVar(&decompress, "decompress", false, "write a WAL object's content, decompressed and checked, instead of the object")
	c.Flags().BoolVar(&decrypt, "decrypt", false, "wal-g's flag: tusk always decrypts what it reads with the repository's key")
	return c
}

func newStGetCmd(root *rootOpts) *cobra.Command {
	var noDecompress, noDecrypt bool
	c := &cobra.Command{
		Use:   "get KEY DEST",
		Short: "Download an object into the file DEST (or into the folder DEST); a WAL object decompressed",
		Args:  exactArgs(2, "the key of an object and a destination path"),
		RunE: func(c *cobra.Command, args []string) error {
			if noDecrypt {
				return usagef(errors.New("--no-decrypt is not supported: tusk reads an encrypted repository only through its key, so st get writes the object decrypted"))
			}
			key := stKey(args[0])
			dest := args[1]
			if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
				dest = filepath.Join(dest, path.Base(key))
			}
			f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			if err != nil {
				return fmt.Errorf("st get: cannot create %s: %w (it must not exist yet)", dest, unwrapPathErr(err))
			}
			err = stRead(c, root, key, f, !noDecompress && isWALKey(key))
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("st get: write %s: %w", dest, cerr)
			}
			if err != nil {
				os.Remove(dest)
			}
			return err
		},
	}
	c.Flags().BoolVar(&noDecompress, "no-decompress", false, "write a WAL object as stored instead of its content")
	c.Flags().BoolVar(&noDecrypt, "no-decrypt", false, "wal-g's flag, refused: tusk writes the object decrypted")
	return c
}

// isWALKey reports whether key is a WAL object's.
func isWALKey(key string) bool {
	_, ok := wal.NameOf(key)
	return ok
}

// stRead writes the object key to w: as stored (decrypted), or, with
// decompress, a WAL object's content, checked as wal-fetch checks it.
func stRead(c *cobra.Command, root *rootOpts, key string, w io.Writer, decompress bool) error {
	cfg, _, st, err := root.loadRepo(c)
	if err != nil {
		return err
	}
	ctx := c.Context()
	if decompress {
		n, ok := wal.NameOf(key)
		if !ok {
			return usagef(fmt.Errorf("--decompress reads WAL objects only (keys under %s such as %s); %s is not one", wal.Prefix, wal.SegmentAt(1, 1, 0).Key(), key))
		}
		_, err := (&archive.Archive{Store: st}).Check(ctx, n.File, w)
		if errors.Is(err, storage.ErrNotFound) {
			return &ExitError{Code: 1, Err: fmt.Errorf("object %s is not in %s (see tusk st ls)", key, cfg.Repo)}
		}
		if err != nil {
			return describeStorageErr(diagnose(ctx, st, err), cfg)
		}
		return nil
	}
	rc, err := st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return &ExitError{Code: 1, Err: fmt.Errorf("object %s is not in %s (see tusk st ls)", key, cfg.Repo)}
	}
	if err != nil {
		return describeStorageErr(diagnose(ctx, st, err), cfg)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return describeStorageErr(fmt.Errorf("read %s: %w", key, err), cfg)
	}
	return nil
}

// stManaged are the keys st put and st rm refuse: tusk's own layout and
// wal-g's.
var stManaged = []string{wal.Prefix, "backups/", storage.MarkerKey, "basebackups_005/", "wal_005/"}

// stCheckKey refuses key (a prefix, for rm) where a write or a removal by
// hand would change backups or the archive behind the commands that keep
// them consistent.
func stCheckKey(verb, key string) error {
	for _, m := range stManaged {
		if strings.HasPrefix(key, m) || strings.HasPrefix(m, key) {
			what := map[string]string{
				wal.Prefix: "tusk's WAL archive (use wal-push, and delete garbage)", "backups/": "tusk's backups (use backup-push, and delete)",
				storage.MarkerKey: "the repository marker", "basebackups_005/": "wal-g's backups, which tusk reads and never writes",
				"wal_005/": "wal-g's WAL, which tusk reads and never writes",
			}[m]
			if key == "" {
				return usagef(fmt.Errorf("st %s of the whole repository is refused: it holds %s", verb, what))
			}
			return usagef(fmt.Errorf("st %s %s is refused: %s is %s, and an object written or removed by hand there would corrupt it without a word", verb, key, m, what))
		}
	}
	return nil
}

func newStPutCmd(root *rootOpts) *cobra.Command {
	var force, stdin, noCompress, noEncrypt bool
	c := &cobra.Command{
		Use:   "put LOCAL_PATH KEY",
		Short: "Upload a file (or, with -s, standard input) as the object KEY, outside the keys tusk manages",
		Args:  rangeArgs(1, 2, "a local file and a key, or with --read-stdin a key"),
		RunE: func(c *cobra.Command, args []string) error {
			if noEncrypt {
				return usagef(errors.New("--no-encrypt is refused: in an encrypted repository every object tusk writes is encrypted"))
			}
			var src io.Reader = os.Stdin
			key := ""
			switch {
			case stdin && len(args) == 1:
				key = stKey(args[0])
			case !stdin && len(args) == 2:
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("st put: cannot read %s: %w", args[0], unwrapPathErr(err))
				}
				defer f.Close()
				src, key = f, stKey(args[1])
			default:
				return usagef(errors.New("st put takes LOCAL_PATH KEY, or KEY with --read-stdin (-s)"))
			}
			if key == "" || strings.HasSuffix(key, "/") {
				return usagef(fmt.Errorf("st put: %q is not an object key (a key names an object, like extra/notes.txt)", args[len(args)-1]))
			}
			if err := stCheckKey("put", key); err != nil {
				return err
			}
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			if _, err := st.Stat(ctx, key); err == nil && !force {
				return &ExitError{Code: 1, Err: fmt.Errorf("object %s already exists in %s; to overwrite it, add -f (--force)", key, cfg.Repo)}
			} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			if err := st.Put(ctx, key, src); err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			log.Info("object stored", "key", key)
			return nil
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "overwrite an existing object")
	c.Flags().BoolVarP(&stdin, "read-stdin", "s", false, "read the object from standard input")
	c.Flags().BoolVar(&noCompress, "no-compress", false, "wal-g's flag: tusk stores st put's objects as given, uncompressed, always")
	c.Flags().BoolVar(&noEncrypt, "no-encrypt", false, "wal-g's flag, refused: every object of an encrypted repository is encrypted")
	return c
}

func newStRmCmd(root *rootOpts) *cobra.Command {
	c := &cobra.Command{
		Use:   "rm PREFIX",
		Short: "Remove every object under PREFIX, outside the keys tusk manages",
		Args:  exactArgs(1, "a key or a prefix"),
		RunE: func(c *cobra.Command, args []string) error {
			prefix := stKey(args[0])
			if err := stCheckKey("rm", prefix); err != nil {
				return err
			}
			cfg, log, st, err := root.loadRepo(c)
			if err != nil {
				return err
			}
			ctx := c.Context()
			var keys []string
			if err := st.List(ctx, prefix, func(o storage.Object) error {
				keys = append(keys, o.Key)
				return nil
			}); err != nil {
				return describeStorageErr(diagnose(ctx, st, err), cfg)
			}
			if len(keys) == 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("no object or folder %s in %s (see tusk st ls)", prefix, cfg.Repo)}
			}
			for len(keys) > 0 {
				batch := keys[:min(len(keys), 1000)]
				keys = keys[len(batch):]
				if err := st.Delete(ctx, batch...); err != nil {
					return describeStorageErr(diagnose(ctx, st, err), cfg)
				}
				for _, k := range batch {
					log.Info("object deleted", "key", k)
				}
			}
			return nil
		},
	}
	c.Flags().Bool("all-versions", false, "wal-g's flag: tusk deletes the current version; the bucket's lifecycle rules keep or expire older ones")
	_ = c.Flags().SetAnnotation("all-versions", walgNoteAnnotation, []string{"tusk deletes the current version; the bucket's lifecycle rules keep or expire older ones"})
	return c
}

// rangeArgs is cobra.RangeArgs with a sentence that says what is expected.
func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef(fmt.Errorf("%s takes %s; got %d argument(s) (see %s --help)", c.Name(), what, len(args), c.CommandPath()))
		}
		return nil
	}
}
