package cmd

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walgNoteAnnotation marks a flag of wal-g's that tusk accepts, so that
// wal-g's command lines run, and does not act on: its value is why, and
// load logs one line for each such flag given.
const walgNoteAnnotation = "tusk_walg_note"

// walgFlag is one of wal-g's flags that tusk accepts and notes.
type walgFlag struct {
	name, short, why string
}

const whyWALGComposer = "tusk cuts the server's stream into parts in order"

// backupPushWALGFlags are wal-g's backup-push flags besides --full,
// --permanent and --delta-from-name, which tusk honours.
var backupPushWALGFlags = []walgFlag{
	{"verify", "v", "in local mode tusk always checks data page checksums as it reads the pages, and in remote mode the server checks them as it sends them"},
	{"store-all-corrupt", "s", "tusk records the first bad blocks of each file in the backup's metadata"},
	{"rating-composer", "r", whyWALGComposer},
	{"copy-composer", "c", whyWALGComposer},
	{"database-composer", "b", whyWALGComposer},
	{"without-files-metadata", "", "tusk keeps PostgreSQL's own manifest with every backup"},
}

// addWALGBackupPushFlags registers backupPushWALGFlags on fs.
func addWALGBackupPushFlags(fs *pflag.FlagSet) {
	for _, f := range backupPushWALGFlags {
		addWALGFlag(fs, f)
	}
}

func addWALGFlag(fs *pflag.FlagSet, f walgFlag) {
	fs.BoolP(f.name, f.short, false, "wal-g's flag, accepted and ignored: "+f.why)
	_ = fs.SetAnnotation(f.name, walgNoteAnnotation, []string{f.why})
}

// walgFlagNotes are one sentence for each of wal-g's noted flags given on
// c's command line.
func walgFlagNotes(c *cobra.Command) []string {
	var notes []string
	c.Flags().Visit(func(f *pflag.Flag) {
		if why, ok := f.Annotations[walgNoteAnnotation]; ok && len(why) > 0 {
			notes = append(notes, "--"+f.Name+" is ignored: "+why[0])
		}
	})
	return notes
}
