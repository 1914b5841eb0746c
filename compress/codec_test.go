package compress

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, name, ext string
	}{
		{"zstd", "zstd", "zstd", ".zst"},
		{"zstd:3", "zstd", "zstd", ".zst"},
		{"zstd:1", "zstd:1", "zstd", ".zst"},
		{"zstd:22", "zstd:22", "zstd", ".zst"},
		{" ZSTD:7 ", "zstd:7", "zstd", ".zst"},
		{"s2", "s2", "s2", ".s2"},
		{"s2:better", "s2:better", "s2", ".s2"},
		{"s2:best", "s2:best", "s2", ".s2"},
		{"gzip", "gzip", "gzip", ".gz"},
		{"gzip:6", "gzip", "gzip", ".gz"},
		{"gzip:1", "gzip:1", "gzip", ".gz"},
		{"gzip:9", "gzip:9", "gzip", ".gz"},
		{"lz4", "lz4", "lz4", ".lz4"},
		{"LZ4", "lz4", "lz4", ".lz4"},
		{"none", "none", "none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := c.Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
			if got := c.Ext(); got != tt.ext {
				t.Errorf("Ext() = %q, want %q", got, tt.ext)
			}
			again, err := Parse(c.String())
			if err != nil || again != c {
				t.Errorf("Parse(%q) = %v, %v; want %v", c.String(), again, err, c)
			}
		})
	}
}

func TestParseEveryLevel(t *testing.T) {
	t.Parallel()
	for _, m := range []struct {
		name   string
		lo, hi int
	}{{"zstd", 1, 22}, {"gzip", 1, 9}} {
		for l := m.lo; l <= m.hi; l++ {
			s := m.name + ":" + strconv.Itoa(l)
			c, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			if again, err := Parse(c.String()); err != nil || again != c {
				t.Errorf("Parse(%q).String() = %q does not parse back: %v", s, c.String(), err)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // in the message besides the input and the valid forms
	}{
		{"", ""},
		{"snappy", ""},
		{"zstd:0", "1..22"},
		{"zstd:23", "1..22"},
		{"zstd:-1", "1..22"},
		{"zstd:fast", "1..22"},
		{"zstd:", "1..22"},
		{"gzip:0", "1..9"},
		{"gzip:10", "1..9"},
		{"s2:fast", ""},
		{"s2:", ""},
		{"lz4:9", ""},
		{"none:1", ""},
		{"brotli", "tusk reads wal-g's brotli objects but does not write brotli"},
		{"lzma", "tusk reads wal-g's lzma objects but does not write lzma"},
		{"LZMA", "tusk reads wal-g's lzma objects but does not write lzma"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.in, c)
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("Parse(%q) error %v does not wrap ErrUnsupported", tt.in, err)
			}
			msg := err.Error()
			for _, s := range []string{`"` + tt.in + `"`, tt.want, validForms} {
				if !strings.Contains(msg, s) {
					t.Errorf("Parse(%q) error %q does not contain %q", tt.in, msg, s)
				}
			}
		})
	}
}

func TestNamesParse(t *testing.T) {
	t.Parallel()
	for _, n := range Names() {
		c, err := Parse(n)
		if err != nil {
			t.Fatalf("Parse(%q) of a name from Names: %v", n, err)
		}
		if c.Name() != n || c.String() != n {
			t.Errorf("Parse(%q) = %q named %q", n, c, c.Name())
		}
	}
	if again, err := Parse(Default.String()); err != nil || again != Default {
		t.Errorf("Default %q does not parse back: %v", Default, err)
	}
	if (Codec{}).Name() != "none" {
		t.Errorf("zero Codec is %q, want none", Codec{})
	}
}

func TestFromKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, name, base string
	}{
		{"wal_005/000000010000000000000003.zst", "zstd", "wal_005/000000010000000000000003"},
		{"wal_005/000000010000000000000003.lz4", "lz4", "wal_005/000000010000000000000003"},
		{"wal_005/000000010000000000000003.s2", "s2", "wal_005/000000010000000000000003"},
		{"basebackups_005/base_1/tar_partitions/part_1.tar.gz", "gzip", "basebackups_005/base_1/tar_partitions/part_1.tar"},
		{"wal_005/000000010000000000000003.br", "brotli", "wal_005/000000010000000000000003"},
		{"wal_005/000000010000000000000003.lzma", "lzma", "wal_005/000000010000000000000003"},
		{"wal_005/000000010000000000000003", "none", "wal_005/000000010000000000000003"},
		{"basebackups_005/base_1_backup_stop_sentinel.json", "none", "basebackups_005/base_1_backup_stop_sentinel.json"},
		{"part.tar", "none", "part.tar"},
		{"dir.zst/file", "none", "dir.zst/file"},
		{".zst", "none", ".zst"},
		{"", "none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			c, base := FromKey(tt.key)
			if c.Name() != tt.name || base != tt.base {
				t.Errorf("FromKey(%q) = %q, %q; want %q, %q", tt.key, c.Name(), base, tt.name, tt.base)
			}
			if c.Name() != "none" && base+c.Ext() != tt.key {
				t.Errorf("FromKey(%q): base %q + Ext %q is not the key", tt.key, base, c.Ext())
			}
		})
	}
	// Keys tusk writes come back to a codec of the same method.
	for _, n := range Names() {
		c, _ := Parse(n)
		got, base := FromKey("x" + c.Ext())
		if got.Name() != c.Name() || base != "x" {
			t.Errorf("FromKey(%q) = %q, %q", "x"+c.Ext(), got.Name(), base)
		}
	}
}

func TestReadOnlyFromKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"a.br", "a.lzma"} {
		c, _ := FromKey(key)
		if _, err := c.NewWriter(&strings.Builder{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: NewWriter error %v, want ErrUnsupported", key, err)
		}
	}
}
