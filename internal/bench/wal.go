package bench

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/tusk-backup/tusk/wal"
)

// segmentSize is the WAL segment size of the corpus cluster (initdb's
// default).
const segmentSize = wal.DefaultSegSize

// backupStart reads a backup_label's START WAL LOCATION line:
// "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)".
func backupStart(label string) (lsn, file string, err error) {
	sc := bufio.NewScanner(strings.NewReader(label))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "START WAL LOCATION: ")
		if !ok {
			continue
		}
		var l, f string
		if _, err := fmt.Sscanf(rest, "%s (file %24s)", &l, &f); err != nil {
			return "", "", fmt.Errorf("parse backup_label line %q: %w", sc.Text(), err)
		}
		if _, err := wal.ParseSegment(f); err != nil {
			return "", "", fmt.Errorf("parse backup_label: %w", err)
		}
		return l, f, nil
	}
	return "", "", fmt.Errorf("backup_label has no START WAL LOCATION line")
}

// expandCommand substitutes an archive_command or restore_command the way
// PostgreSQL does: %p is the path, %f the file name, %% a percent sign;
// any other %x is kept as it is.
func expandCommand(template, path, file string) string {
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '%' || i+1 == len(template) {
			b.WriteByte(c)
			continue
		}
		switch template[i+1] {
		case 'p':
			b.WriteString(path)
		case 'f':
			b.WriteString(file)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte(c)
			continue
		}
		i++
	}
	return b.String()
}
