package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// machine describes where and on what a benchmark ran.
type machine struct {
	CPUs       int
	CPUModel   string
	Kernel     string
	Postgres   string // "PostgreSQL 15.18"
	PgBackRest string // "pgBackRest 2.45"
	TuskRev    string // git revision, with "+ uncommitted changes" when dirty
	Go         string
	Date       time.Time
}

func (m machine) String() string {
	cpu := fmt.Sprintf("%d CPUs", m.CPUs)
	if m.CPUModel != "" {
		cpu += " (" + m.CPUModel + ")"
	}
	parts := []string{cpu}
	for _, s := range []string{m.Kernel, m.Postgres, m.PgBackRest, "tusk " + m.TuskRev, m.Go} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// corpusFacts describes the WAL both benchmarks work on.
type corpusFacts struct {
	Segments int
	Bytes    int64
	First    string
	Last     string
}

func (c corpusFacts) String() string {
	return fmt.Sprintf("%d segments of real PostgreSQL 15 WAL (%s, %s to %s), written after a base backup "+
		"by `pgbench -i -s 10` and `pgbench -c 4` with `checkpoint_timeout = 30s` and `max_wal_size = 128MB` "+
		"(so, as on a busy server, full-page images make up much of it)",
		c.Segments, formatBytes(c.Bytes), c.First, c.Last)
}

// pushRun is one archive_command's run over the whole corpus.
type pushRun struct {
	Label     string // "tusk, folder"
	Metric    string // metric name stem: "tusk-folder"
	Command   string // the archive_command as configured, scratch paths shown as $VARS
	Segments  int
	Elapsed   time.Duration
	Calls     int           // successful calls of the command
	Skipped   int           // segments the command marked .done itself, so never called for
	Failures  int           // calls that exited non-zero and were retried
	RepoBytes int64         // bytes stored; -1 when there is no repository
	Median    time.Duration // of the successful calls
	Slowest   time.Duration
}

// rate is the throughput in segments per second.
func (r pushRun) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Segments) / r.Elapsed.Seconds()
}

// replayRun is one restore_command's recovery of the whole corpus.
type replayRun struct {
	Label    string
	Metric   string
	Command  string
	Elapsed  time.Duration
	WALBytes int64
	// Prefetched and Fetched count the segments tusk's wal-fetch logged as
	// taken from its prefetch spool and as downloaded itself; both are 0
	// when not known.
	Prefetched, Fetched int
	// All is every run's time when the command ran several times; Elapsed
	// is then their median.
	All []time.Duration
}

// pushReport is what BenchmarkWALPush writes into BENCHMARKS.md.
type pushReport struct {
	Machine  machine
	Corpus   corpusFacts
	Runs     []pushRun
	Baseline string // Metric of the run the ratios divide by
	Ratios   []ratio
	Notes    []string
}

// ratio is one headline comparison.
type ratio struct {
	Label  string
	Metric string // metric name for b.ReportMetric
	Value  float64
	Target string // e.g. "≤ 1.2", or ""
}

// replayReport is what BenchmarkWALReplay writes into BENCHMARKS.md.
type replayReport struct {
	Machine  machine
	Corpus   corpusFacts
	Runs     []replayRun
	Baseline string
	Ratios   []ratio
	Notes    []string
}

func findRun[R interface{ metric() string }](runs []R, metric string) (R, bool) {
	for _, r := range runs {
		if r.metric() == metric {
			return r, true
		}
	}
	var zero R
	return zero, false
}

func (r pushRun) metric() string   { return r.Metric }
func (r replayRun) metric() string { return r.Metric }

const benchCommand = "make bench"

// render returns the wal-push section's body (without its markers).
func (p pushReport) render() string {
	var b strings.Builder
	b.WriteString("## WAL archiving: BenchmarkWALPush\n\n")
	b.WriteString("A simulated PostgreSQL 15 archiver runs each `archive_command` over the segments in order, " +
		"the way PostgreSQL's archiver does: as user postgres, through `sh -c` in the data directory, " +
		"with `%p` = `pg_wal/NAME` and `%f` = `NAME`. As on a busy server, every segment is marked " +
		"`pg_wal/archive_status/NAME.ready` up front; before each call the archiver checks that the " +
		"segment's `.ready` is still there and skips it otherwise (PostgreSQL 15 does, because a command " +
		"may mark later segments `.done` itself, as tusk's push-ahead does), and after each exit 0 it " +
		"renames `.ready` to `.done` (a non-zero exit is retried after 1 s and counted). The figure is the " +
		"wall time from the first call until every segment is `.done`, as segments per second; each command " +
		"starts with an empty repository, and every repository is checked to hold all segments afterwards " +
		"(tusk's also by fetching the first, a middle and the last segment back and comparing bytes).\n\n")
	writeFacts(&b, p.Machine, p.Corpus)
	base, haveBase := findRun(p.Runs, p.Baseline)
	b.WriteString("| archive_command | seconds | segments/s | × " + baseLabel(base.Label, haveBase) +
		" | calls | median call ms | slowest call ms | repository | failed calls |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range p.Runs {
		rel := "–"
		if haveBase && base.rate() > 0 {
			rel = fmt.Sprintf("%.2f", r.rate()/base.rate())
		}
		repo := "–"
		if r.RepoBytes >= 0 {
			repo = formatBytes(r.RepoBytes)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.1f | %s | %d | %.0f | %.0f | %s | %d |\n",
			r.Label, r.Elapsed.Seconds(), r.rate(), rel, r.Calls, ms(r.Median), ms(r.Slowest), repo, r.Failures)
	}
	b.WriteString("\n")
	writeRatios(&b, "Throughput ratios (higher is better for tusk)", p.Ratios)
	b.WriteString("Commands (`$REPO` is a fresh scratch folder, `$CONF` a fresh pgBackRest configuration file):\n\n")
	for _, r := range p.Runs {
		fmt.Fprintf(&b, "- %s: `%s`\n", r.Label, r.Command)
	}
	writeNotes(&b, p.Notes)
	return b.String()
}

// render returns the wal-replay section's body (without its markers).
func (p replayReport) render() string {
	var b strings.Builder
	b.WriteString("## WAL replay: BenchmarkWALReplay\n\n")
	b.WriteString("A base backup (taken before the WAL was written) is restored into a fresh data directory " +
		"with `recovery.signal`, `restore_command` and `recovery_target_action = promote`, and the server " +
		"is started. The figure is the wall time from `pg_ctl start` until `pg_is_in_recovery()` is false, " +
		"that is until PostgreSQL has fetched and replayed every segment and promoted; each run is then " +
		"checked to have replayed to the end of the corpus.\n\n")
	writeFacts(&b, p.Machine, p.Corpus)
	base, haveBase := findRun(p.Runs, p.Baseline)
	b.WriteString("| restore_command | seconds | WAL MB/s | × " + baseLabel(base.Label, haveBase) + " | segments from tusk's prefetch | every run, seconds |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range p.Runs {
		rel := "–"
		if haveBase && base.Elapsed > 0 {
			rel = fmt.Sprintf("%.2f", r.Elapsed.Seconds()/base.Elapsed.Seconds())
		}
		mbps := 0.0
		if r.Elapsed > 0 {
			mbps = float64(r.WALBytes) / 1e6 / r.Elapsed.Seconds()
		}
		prefetched := "–"
		if n := r.Prefetched + r.Fetched; n > 0 {
			prefetched = fmt.Sprintf("%d of %d", r.Prefetched, n)
		}
		all := make([]string, len(r.All))
		for i, d := range r.All {
			all[i] = fmt.Sprintf("%.1f", d.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s | %s | %s |\n", r.Label, r.Elapsed.Seconds(), mbps, rel, prefetched, strings.Join(all, ", "))
	}
	b.WriteString("\n")
	writeRatios(&b, "Time ratios (lower is better for tusk)", p.Ratios)
	b.WriteString("Commands (`$WAL` is a folder of the plain segments, `$REPO` a tusk repository):\n\n")
	for _, r := range p.Runs {
		fmt.Fprintf(&b, "- %s: `%s`\n", r.Label, r.Command)
	}
	writeNotes(&b, p.Notes)
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func baseLabel(label string, ok bool) string {
	if !ok {
		return "baseline"
	}
	return label
}

func writeFacts(b *strings.Builder, m machine, c corpusFacts) {
	fmt.Fprintf(b, "- Command: `%s`\n", benchCommand)
	fmt.Fprintf(b, "- Date: %s\n", m.Date.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- Machine: %s\n", m)
	fmt.Fprintf(b, "- WAL: %s\n", c)
	b.WriteString("- The machine is shared and noisy: compare the ratios, which are measured in the same run, " +
		"more than the absolute figures.\n\n")
}

func writeRatios(b *strings.Builder, title string, rs []ratio) {
	if len(rs) == 0 {
		return
	}
	b.WriteString(title + ":\n\n")
	for _, r := range rs {
		target := ""
		if r.Target != "" {
			target = " (target " + r.Target + ")"
		}
		fmt.Fprintf(b, "- **%s: %.2f**%s\n", r.Label, r.Value, target)
	}
	b.WriteString("\n")
}

func writeNotes(b *strings.Builder, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("\nNotes:\n\n")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
}

// formatBytes writes n in binary units: "1.17 GiB", "214.3 MiB".
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// markers returns the HTML comments that delimit the named section.
func markers(name string) (begin, end string) {
	return "<!-- bench:" + name + ":begin -->", "<!-- bench:" + name + ":end -->"
}

// replaceSection returns doc with the named section's content replaced by
// body, markers included; a section that is not there yet is appended.
// Everything outside the markers is kept byte for byte.
func replaceSection(doc, name, body string) (string, error) {
	begin, end := markers(name)
	block := begin + "\n" + strings.TrimRight(body, "\n") + "\n" + end
	i := strings.Index(doc, begin)
	if i < 0 {
		if strings.Contains(doc, end) {
			return "", fmt.Errorf("section %s: end marker without begin marker", name)
		}
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + block + "\n", nil
	}
	if strings.Contains(doc[i+len(begin):], begin) {
		return "", fmt.Errorf("section %s: begin marker appears twice", name)
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return "", fmt.Errorf("section %s: begin marker without end marker", name)
	}
	return doc[:i] + block + doc[i+j+len(end):], nil
}

// benchmarksTitle starts BENCHMARKS.md when a benchmark creates it.
const benchmarksTitle = "# Benchmarks\n\nEach section below is written by the benchmark that measures it " +
	"(between its `<!-- bench:... -->` markers); `" + benchCommand + "` refreshes them all.\n"

// writeSection rewrites the named section of the markdown file at path,
// creating the file if needed.
func writeSection(path, name, body string) error {
	doc, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		doc = []byte(benchmarksTitle)
	} else if err != nil {
		return err
	}
	out, err := replaceSection(string(doc), name, body)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
