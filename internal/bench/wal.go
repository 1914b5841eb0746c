package bench

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// segmentSize is the WAL segment size of the corpus cluster (initdb's
// default); segmentsPerLog follows from it.
const (
	segmentSize    = 16 << 20
	segmentsPerLog = 1 << 32 / segmentSize
)

// segment is a WAL segment file name's parts: TTTTTTTTLLLLLLLLSSSSSSSS.
type segment struct {
	Timeline, Log, Seg uint32
}

var segmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)

func parseSegment(name string) (segment, error) {
	if !segmentRE.MatchString(name) {
		return segment{}, fmt.Errorf("%q is not a WAL segment name", name)
	}
	var parts [3]uint32
	for i := range parts {
		v, err := strconv.ParseUint(name[8*i:8*i+8], 16, 32)
		if err != nil {
			return segment{}, fmt.Errorf("%q is not a WAL segment name: %w", name, err)
		}
		parts[i] = uint32(v)
	}
	s := segment{Timeline: parts[0], Log: parts[1], Seg: parts[2]}
	if s.Seg >= segmentsPerLog {
		return segment{}, fmt.Errorf("%q is not a 16 MiB WAL segment name", name)
	}
	return s, nil
}

func (s segment) String() string {
	return fmt.Sprintf("%08X%08X%08X", s.Timeline, s.Log, s.Seg)
}

func (s segment) next() segment {
	if s.Seg+1 == segmentsPerLog {
		return segment{Timeline: s.Timeline, Log: s.Log + 1}
	}
	return segment{Timeline: s.Timeline, Log: s.Log, Seg: s.Seg + 1}
}

// startLSN is the LSN of the segment's first byte, as PostgreSQL writes it.
func (s segment) startLSN() string {
	return fmt.Sprintf("%X/%X", s.Log, s.Seg*segmentSize)
}

// segmentRange lists the segments from first to last inclusive.
func segmentRange(first, last string) ([]string, error) {
	f, err := parseSegment(first)
	if err != nil {
		return nil, err
	}
	l, err := parseSegment(last)
	if err != nil {
		return nil, err
	}
	if f.Timeline != l.Timeline || l.Log < f.Log || (l.Log == f.Log && l.Seg < f.Seg) {
		return nil, fmt.Errorf("no segments from %s to %s", first, last)
	}
	var out []string
	for s := f; ; s = s.next() {
		out = append(out, s.String())
		if s == l {
			return out, nil
		}
	}
}

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
		if _, err := parseSegment(f); err != nil {
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
