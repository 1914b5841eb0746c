package compress

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Run the benchmarks with
//
//	go test -run '^$' -bench . -benchtime 3x -timeout 60m ./compress/
//
// MB/s is of uncompressed bytes, both ways; ratio is uncompressed/compressed.
// Writes and reads go in 32 KiB pieces, as io.Copy from a pipe makes them.

// benchCodecs are the codecs of the main table: each zstd band, each s2
// level, two gzip levels, lz4, and none for the harness's own cost.
var benchCodecs = []string{
	"zstd:1", "zstd", "zstd:7", "zstd:19",
	"s2", "s2:better", "s2:best", "gzip:1", "gzip", "lz4", "none",
}

const chunk = 32 << 10

// countWriter counts bytes and keeps none.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// cpuClock measures the CPU time of this process, all threads (the
// garbage collector's too). On a busy machine it varies much less than wall
// time, and CPU per byte is what decides whether compression keeps up.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{cpuTime()} }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds "MB/cpu-s": megabytes per CPU second, b.N times n bytes.
func (c cpuClock) report(b *testing.B, n int64) {
	if d := cpuTime() - c.start; d > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/d.Seconds()/1e6, "MB/cpu-s")
	}
}

// compressTo compresses data as one object into dst, in 32 KiB writes.
func compressTo(c Codec, t tuning, dst io.Writer, data []byte) error {
	w, err := c.newWriter(dst, t)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			w.Close()
			return err
		}
		data = data[n:]
	}
	return w.Close()
}

// decompressFrom reads one object, in 32 KiB reads, and returns its length.
func decompressFrom(c Codec, t tuning, comp []byte, buf []byte) (int64, error) {
	r, err := c.newReader(bytes.NewReader(comp), t)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func inputs(c *corpus) []struct {
	name  string
	files []corpusFile
} {
	return []struct {
		name  string
		files []corpusFile
	}{{"wal", c.wal}, {"table", c.table}}
}

func totalSize(files []corpusFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.data))
	}
	return n
}

// BenchmarkCompress compresses each corpus file as one object with a writer
// from NewWriter, as wal-push and backup-push do.
func BenchmarkCompress(b *testing.B) {
	c := loadCorpus(b)
	for _, in := range inputs(c) {
		for _, name := range benchCodecs {
			b.Run(in.name+"/"+name, func(b *testing.B) {
				codec := mustParse(b, name)
				b.SetBytes(totalSize(in.files))
				var out countWriter
				cpu := startCPU()
				for b.Loop() {
					out.n = 0
					for _, f := range in.files {
						if err := compressTo(codec, defaultTuning, &out, f.data); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu.report(b, totalSize(in.files))
				b.ReportMetric(float64(totalSize(in.files))/float64(out.n), "ratio")
			})
		}
	}
}

// BenchmarkDecompress reads each corpus file back through NewReader.
func BenchmarkDecompress(b *testing.B) {
	c := loadCorpus(b)
	buf := make([]byte, chunk)
	for _, in := range inputs(c) {
		for _, name := range benchCodecs {
			b.Run(in.name+"/"+name, func(b *testing.B) {
				codec := mustParse(b, name)
				comps, compSize := compressAll(b, codec, in.files)
				b.SetBytes(totalSize(in.files))
				cpu := startCPU()
				for b.Loop() {
					for _, comp := range comps {
						if _, err := decompressFrom(codec, defaultTuning, comp, buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu.report(b, totalSize(in.files))
				b.ReportMetric(float64(totalSize(in.files))/float64(compSize), "ratio")
			})
		}
	}
}

func compressAll(b *testing.B, c Codec, files []corpusFile) ([][]byte, int64) {
	b.Helper()
	var comps [][]byte
	var size int64
	for _, f := range files {
		var buf bytes.Buffer
		if err := compressTo(c, defaultTuning, &buf, f.data); err != nil {
			b.Fatal(err)
		}
		comps = append(comps, buf.Bytes())
		size += int64(buf.Len())
	}
	return comps, size
}

// BenchmarkWALSegment compresses and decompresses one real 16 MiB segment per
// iteration, with a codec made for it ("fresh", as in a wal-push process) or
// taken from the pool ("pooled", as in a long-lived process). The pool only
// holds zstd encoders and decoders: for the other codecs both are the same.
func BenchmarkWALSegment(b *testing.B) {
	c := loadCorpus(b)
	seg := c.wal[len(c.wal)/2].data
	buf := make([]byte, chunk)
	for _, name := range []string{"zstd:1", "zstd", "s2", "s2:better", "gzip:1", "lz4"} {
		codec := mustParse(b, name)
		var comp bytes.Buffer
		if err := compressTo(codec, defaultTuning, &comp, seg); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []struct {
			name string
			t    tuning
		}{{"fresh", withPool(false)}, {"pooled", withPool(true)}} {
			b.Run(name+"/compress-"+mode.name, func(b *testing.B) {
				b.SetBytes(int64(len(seg)))
				b.ReportAllocs()
				var out countWriter
				cpu := startCPU()
				for b.Loop() {
					out.n = 0
					if err := compressTo(codec, mode.t, &out, seg); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b, int64(len(seg)))
				b.ReportMetric(float64(len(seg))/float64(out.n), "ratio")
			})
			b.Run(name+"/decompress-"+mode.name, func(b *testing.B) {
				b.SetBytes(int64(len(seg)))
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					if _, err := decompressFrom(codec, mode.t, comp.Bytes(), buf); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b, int64(len(seg)))
			})
		}
	}
}

func withPool(p bool) tuning {
	t := defaultTuning
	t.pool = p
	return t
}

// BenchmarkNewWriter is the cost of making a writer and closing it empty:
// the per-object overhead, fresh and pooled.
func BenchmarkNewWriter(b *testing.B) {
	for _, name := range []string{"zstd:1", "zstd", "zstd:7", "zstd:19", "s2", "gzip:1", "gzip", "lz4"} {
		for _, mode := range []struct {
			name string
			t    tuning
		}{{"fresh", withPool(false)}, {"pooled", withPool(true)}} {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				codec := mustParse(b, name)
				b.ReportAllocs()
				var out countWriter
				for b.Loop() {
					if err := compressTo(codec, mode.t, &out, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkNewReader is the cost of making a reader and reading an empty
// stream: the per-object overhead of fetching.
func BenchmarkNewReader(b *testing.B) {
	buf := make([]byte, chunk)
	for _, name := range []string{"zstd", "s2", "gzip", "lz4"} {
		for _, mode := range []struct {
			name string
			t    tuning
		}{{"fresh", withPool(false)}, {"pooled", withPool(true)}} {
			b.Run(name+"/"+mode.name, func(b *testing.B) {
				codec := mustParse(b, name)
				comp := compressBytes(b, codec, nil)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := decompressFrom(codec, mode.t, comp, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// benchTunings are the alternatives to defaultTuning the benchmarks weigh,
// each with the codec it concerns.
var benchTunings = []struct {
	name  string
	codec string
	t     tuning
}{
	{"zstd-decoder-concurrency-1", "zstd:1", withPool(false)},
	{"zstd-decoder-concurrency-4", "zstd:1", tuning{zstdDecoderConcurrency: 4, zstdLowmem: true, s2Concurrency: 1, lz4Concurrency: 1}},
	{"zstd-decoder-lowmem-off", "zstd:1", tuning{zstdDecoderConcurrency: 1, zstdLowmem: false, s2Concurrency: 1, lz4Concurrency: 1}},
	{"s2-concurrency-1", "s2", defaultTuning},
	{"s2-concurrency-2", "s2", tuning{pool: true, zstdDecoderConcurrency: 1, zstdLowmem: true, s2Concurrency: 2, lz4Concurrency: 1}},
	{"lz4-concurrency-1", "lz4", defaultTuning},
	{"lz4-concurrency-2", "lz4", tuning{pool: true, zstdDecoderConcurrency: 1, zstdLowmem: true, s2Concurrency: 1, lz4Concurrency: 2}},
}

// BenchmarkTuning compares goroutines and memory options per object.
func BenchmarkTuning(b *testing.B) {
	c := loadCorpus(b)
	buf := make([]byte, chunk)
	for _, in := range inputs(c) {
		for _, tu := range benchTunings {
			codec := mustParse(b, tu.codec)
			b.Run(in.name+"/"+tu.name+"/compress", func(b *testing.B) {
				b.SetBytes(totalSize(in.files))
				var out countWriter
				cpu := startCPU()
				for b.Loop() {
					for _, f := range in.files {
						if err := compressTo(codec, tu.t, &out, f.data); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu.report(b, totalSize(in.files))
			})
			b.Run(in.name+"/"+tu.name+"/decompress", func(b *testing.B) {
				comps, _ := compressAll(b, codec, in.files)
				b.SetBytes(totalSize(in.files))
				cpu := startCPU()
				for b.Loop() {
					for _, comp := range comps {
						if _, err := decompressFrom(codec, tu.t, comp, buf); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu.report(b, totalSize(in.files))
			})
		}
	}
}

// childEnv makes the test binary a stand-in for one wal-push process: it
// compresses the file named in the variable with the codec named there and
// exits. See TestMain and BenchmarkWALPushProcess.
const childEnv = "TUSK_COMPRESS_BENCH_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(walPushChild(v))
	}
	m.Run()
}

func walPushChild(v string) int {
	var codecName, path string
	if _, err := fmt.Sscanf(v, "%s %s", &codecName, &path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := Parse(codecName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	w, err := c.NewWriter(io.Discard)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := io.CopyBuffer(w, onlyReader{f}, make([]byte, chunk)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// onlyReader hides *os.File's WriterTo so that io.CopyBuffer uses its buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// BenchmarkWALPushProcess runs one process per iteration that reads one real
// 16 MiB segment from the page cache and compresses it: everything wal-push
// spends on compression, cold, plus the cost of starting a Go process, which
// "none" shows alone.
func BenchmarkWALPushProcess(b *testing.B) {
	c := loadCorpus(b)
	exe, err := os.Executable()
	if err != nil {
		b.Skip("no test executable to run:", err)
	}
	seg := filepath.Join(b.TempDir(), "segment")
	if err := os.WriteFile(seg, c.wal[len(c.wal)/2].data, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"none", "zstd:1", "zstd", "s2", "gzip:1", "lz4"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(walSegmentSize)
			var cpu time.Duration
			for b.Loop() {
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), childEnv+"="+name+" "+seg)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu-ms/op")
		})
	}
}
