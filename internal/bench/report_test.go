package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReplaceSection(t *testing.T) {
	tests := []struct {
		name, doc, want string
		wantErr         bool
	}{
		{name: "empty", doc: "", want: "<!-- bench:x:begin -->\nnew\n<!-- bench:x:end -->\n"},
		{name: "append", doc: "# T\n\nother",
			want: "# T\n\nother\n\n<!-- bench:x:begin -->\nnew\n<!-- bench:x:end -->\n"},
		{name: "replace keeps the rest",
			doc:  "# T\n<!-- bench:y:begin -->\nY\n<!-- bench:y:end -->\n<!-- bench:x:begin -->\nold\nold\n<!-- bench:x:end -->\ntail\n",
			want: "# T\n<!-- bench:y:begin -->\nY\n<!-- bench:y:end -->\n<!-- bench:x:begin -->\nnew\n<!-- bench:x:end -->\ntail\n"},
		{name: "no end", doc: "<!-- bench:x:begin -->\nold\n", wantErr: true},
		{name: "no begin", doc: "old\n<!-- bench:x:end -->\n", wantErr: true},
		{name: "twice", doc: "<!-- bench:x:begin -->\n<!-- bench:x:end -->\n<!-- bench:x:begin -->\n<!-- bench:x:end -->\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceSection(tt.doc, "x", "new\n")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestWriteSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := writeSection(path, "a", "first"); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "b", "second"); err != nil {
		t.Fatal(err)
	}
	if err := writeSection(path, "a", "third"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := benchmarksTitle + "\n<!-- bench:a:begin -->\nthird\n<!-- bench:a:end -->\n\n<!-- bench:b:begin -->\nsecond\n<!-- bench:b:end -->\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderPushReport(t *testing.T) {
	r := pushReport{
		Machine: machine{CPUs: 2, Postgres: "PostgreSQL 15.18", TuskRev: "abc", Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)},
		Corpus:  corpusFacts{Segments: 4, Bytes: 4 * segmentSize, First: "A", Last: "B"},
		Runs: []pushRun{
			{Label: "base", Metric: "base", Command: "x %p", Segments: 4, Calls: 4, Elapsed: 2 * time.Second, RepoBytes: 1 << 20,
				Median: 500 * time.Millisecond, Slowest: 600 * time.Millisecond},
			{Label: "fast", Metric: "fast", Command: "y %p", Segments: 4, Calls: 1, Skipped: 3, Elapsed: time.Second, RepoBytes: -1, Failures: 1,
				Median: time.Millisecond, Slowest: 997 * time.Millisecond},
		},
		Baseline: "base",
		Ratios:   []ratio{{Label: "fast ÷ base", Value: 2}},
	}
	got := r.render()
	for _, want := range []string{
		"| base | 2.00 | 2.0 | 1.00 | 4 | 500 | 600 | 1.0 MiB | 0 |",
		"| fast | 1.00 | 4.0 | 2.00 | 1 | 1 | 997 | – | 1 |",
		"**fast ÷ base: 2.00**",
		"2026-01-02 03:04 UTC",
		"64.0 MiB",
		"`make bench`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestRenderReplayReport(t *testing.T) {
	r := replayReport{
		Corpus: corpusFacts{Segments: 4, Bytes: 4 * segmentSize, First: "A", Last: "B"},
		Runs: []replayRun{
			{Label: "cp", Metric: "cp", Command: "cp", Elapsed: 10 * time.Second, WALBytes: 100e6},
			{Label: "tusk", Metric: "tusk", Command: "tusk", Elapsed: 11 * time.Second, WALBytes: 100e6, Prefetched: 3, Fetched: 1,
				All: []time.Duration{9 * time.Second, 11 * time.Second, 12 * time.Second}},
		},
		Baseline: "cp",
	}
	got := r.render()
	for _, want := range []string{
		"| cp | 10.0 | 10.0 | 1.00 | – |  |",
		"| tusk | 11.0 | 9.1 | 1.10 | 3 of 4 | 9.0, 11.0, 12.0 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestBackupScales(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "", want: []int{100, 400}},
		{in: "10", want: []int{10}},
		{in: " 100 , 400 ", want: []int{100, 400}},
		{in: "100,x", wantErr: true},
		{in: "0", wantErr: true},
		{in: "100,100", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := backupScales(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBackupReportGrowth(t *testing.T) {
	run := func(metric string, s float64) backupRun {
		return backupRun{Label: metric, Metric: metric, Elapsed: time.Duration(s * float64(time.Second))}
	}
	rep := backupReport{Scales: []scaleResult{
		{Scale: 100, DBBytes: 1000, Runs: []backupRun{run("tusk-push-minio", 2), run("walg-push-minio", 4), run("pg_basebackup", 1)}},
		{Scale: 400, DBBytes: 4000, Runs: []backupRun{run("tusk-push-minio", 8.8), run("pg_basebackup", 3)}},
	}}
	g := rep.growth()
	if len(g) != 2 {
		t.Fatalf("growth = %+v, want the 2 runs measured at both scales", g)
	}
	if g[0].Metric != "growth-tusk-push-minio" || g[0].Value != 4.4 || g[0].Target != "≤ 4.20" {
		t.Errorf("tusk's growth = %+v, want 4.4 against ≤ 4.20", g[0])
	}
	if g[1].Target != "" {
		t.Errorf("a peer's growth has target %q, want none", g[1].Target)
	}
	body := rep.render()
	for _, want := range []string{"### Scale 100", "### Scale 400", "### Growth: scale 400 ÷ scale 100", "`TUSK_BENCH_WALG=/path/to/wal-g make bench` adds"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(body, "wal-g backup-fetch fsyncs") {
		t.Error("report without wal-g has wal-g's notes")
	}
}

func TestBackupRatiosRemoteTarget(t *testing.T) {
	run := func(metric string, s float64) backupRun {
		return backupRun{Label: metric, Metric: metric, Elapsed: time.Duration(s * float64(time.Second))}
	}
	runs := []backupRun{run("tusk-push-remote", 2), run("tusk-push-minio", 1.5), run("pg_basebackup", 2)}
	find := func(rs []ratio, metric string) (ratio, bool) {
		for _, r := range rs {
			if r.Metric == metric {
				return r, true
			}
		}
		return ratio{}, false
	}
	// Without tusk before local mode, the target is on the ratio to
	// pg_basebackup.
	rs := backupRatios(runs, 100, nil, nil)
	if r, _ := find(rs, "x-tusk-push-remote/pg_basebackup"); r.Target != remoteBefore(100) {
		t.Errorf("without pairs, remote ÷ pg_basebackup target = %q, want %q", r.Target, remoteBefore(100))
	}
	if _, ok := find(rs, "x-paired-tusk-push-remote/before-push-remote"); ok {
		t.Error("without pairs, a paired ratio was reported")
	}
	// With them, it is on the median of the rounds' ratios.
	pairs := pairedRatios(
		[]backupRun{run("tusk-push-remote", 2), run("tusk-push-remote", 3), run("tusk-push-remote", 1)},
		[]backupRun{run("before-push-remote", 4), run("before-push-remote", 2), run("before-push-remote", 1.25)})
	if want := []float64{0.5, 0.8, 1.5}; !slices.Equal(pairs, want) {
		t.Fatalf("pairedRatios = %v, want %v", pairs, want)
	}
	rs = backupRatios(runs, 100, pairs, nil)
	if r, _ := find(rs, "x-tusk-push-remote/pg_basebackup"); r.Target != "" {
		t.Errorf("with pairs, remote ÷ pg_basebackup target = %q, want none", r.Target)
	}
	r, ok := find(rs, "x-paired-tusk-push-remote/before-push-remote")
	if !ok || r.Value != 0.8 || r.Target != "≤ 1.0" || !strings.Contains(r.Label, "0.50, 0.80, 1.50") {
		t.Errorf("paired ratio = %+v, want 0.8 against ≤ 1.0, naming every round's ratio", r)
	}
	if pairedRatios(runs[:1], nil) != nil {
		t.Error("pairedRatios of unequal lists is not nil")
	}
}

func TestBackupRatiosWalGPaired(t *testing.T) {
	run := func(metric string, s float64) backupRun {
		return backupRun{Label: metric, Metric: metric, Elapsed: time.Duration(s * float64(time.Second))}
	}
	runs := []backupRun{run("tusk-push-minio", 3), run("walg-push-minio", 4)}
	rs := backupRatios(runs, 400, nil, nil)
	if len(rs) != 1 || rs[0].Target != "≤ 0.6" {
		t.Fatalf("without pairs: %+v, want the ratio of medians against ≤ 0.6", rs)
	}
	rs = backupRatios(runs, 400, nil, []float64{0.5, 0.55, 0.7})
	if len(rs) != 2 || rs[0].Target != "" || rs[1].Metric != "x-paired-tusk-push-minio/walg-push-minio" || rs[1].Value != 0.55 || rs[1].Target != "≤ 0.6" {
		t.Fatalf("with pairs: %+v, want the target on the pairs' median 0.55", rs)
	}
}

func TestInTurn(t *testing.T) {
	var got []string
	done := 0
	a := func() { got = append(got, "a") }
	b := func() { got = append(got, "b") }
	inTurn(&done, 3, a, b)
	inTurn(&done, 1, a, b)
	if want := "abbaabba"; strings.Join(got, "") != want || done != 4 {
		t.Errorf("order %s after %d pairs, want %s after 4", strings.Join(got, ""), done, want)
	}
}
