package check

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplitShell(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []shellCommand
	}{
		{"tusk wal-push %p", []shellCommand{{[]string{"tusk", "wal-push", "%p"}, ""}}},
		{`'/opt/my tusk/tusk' wal-push "%p"`, []shellCommand{{[]string{"/opt/my tusk/tusk", "wal-push", "%p"}, ""}}},
		{`a\ b "x\"y" 'it''s'`, []shellCommand{{[]string{"a b", `x"y`, "its"}, ""}}},
		{"test ! -f /a/%f && cp %p /a/%f", []shellCommand{{[]string{"test", "!", "-f", "/a/%f"}, "&&"}, {[]string{"cp", "%p", "/a/%f"}, ""}}},
		{"a || b; c | d & e", []shellCommand{{[]string{"a"}, "||"}, {[]string{"b"}, ";"}, {[]string{"c"}, "|"}, {[]string{"d"}, "&"}, {[]string{"e"}, ""}}},
		{"tusk wal-push %p 2>>/var/log/tusk.log >/dev/null 2>&1 < /dev/null", []shellCommand{{[]string{"tusk", "wal-push", "%p"}, ""}}},
		{"tusk wal-push %p;", []shellCommand{{[]string{"tusk", "wal-push", "%p"}, ";"}}},
		{"(a && b)\n{ c; }", []shellCommand{{[]string{"a"}, "&&"}, {[]string{"b"}, ";"}, {[]string{"c"}, ";"}}},
		{"tusk wal-push %p # archive", []shellCommand{{[]string{"tusk", "wal-push", "%p"}, ""}}},
		{"", nil},
	}
	for _, c := range cases {
		got, err := splitShell(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitShell(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"tusk wal-push '%p", `tusk wal-push "%p`} {
		if _, err := splitShell(bad); err == nil {
			t.Errorf("splitShell(%q) accepted an open quote", bad)
		}
	}
}

// TestIdentifyProgram: a command's first word is tusk by name, or this
// binary under any name; a file starting with #! is a script; anything
// else, or nothing, is another tool.
func TestIdentifyProgram(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "archiver")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	script := writeFile(t, "wrapper", "#!/bin/sh\nexec tusk \"$@\"\n")
	other := writeFile(t, "wal-g", "\x7fELF...")
	cases := []struct {
		word string
		want Program
	}{
		{"tusk", ProgramTusk},
		{"/no/such/dir/tusk", ProgramTusk},
		{link, ProgramTusk},
		{script, ProgramScript},
		{"$HOME/bin/x", ProgramScript},
		{other, ProgramOther},
		{filepath.Join(dir, "missing"), ProgramOther},
		{"no-such-program-anywhere", ProgramOther},
		{dir, ProgramOther},
	}
	for _, c := range cases {
		if got := IdentifyProgram(c.word); got != c.want {
			t.Errorf("IdentifyProgram(%q) = %d, want %d", c.word, got, c.want)
		}
	}
}
