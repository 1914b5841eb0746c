package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Program is what the first word of a command runs, as far as check can tell.
type Program int

const (
	ProgramOther  Program = iota // another tool, or nothing installed under that name
	ProgramTusk                  // named tusk, or this binary under another name
	ProgramScript                // a script or a shell expansion: check cannot see what it runs
)

// IdentifyProgram tells what word, the first word of a command in
// archive_command, runs on this host. It looks on check's own PATH, which is
// the server's when check runs as the server's user, as the README says.
func IdentifyProgram(word string) Program {
	if strings.ContainsAny(word, "$`") {
		return ProgramScript
	}
	if filepath.Base(word) == "tusk" {
		return ProgramTusk
	}
	path := word
	if !strings.Contains(word, "/") {
		p, err := exec.LookPath(word)
		if err != nil {
			return ProgramOther
		}
		path = p
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ProgramOther
	}
	if self, err := os.Executable(); err == nil {
		if sfi, err := os.Stat(self); err == nil && os.SameFile(fi, sfi) {
			return ProgramTusk
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return ProgramOther
	}
	defer f.Close()
	head := make([]byte, 2)
	if _, err := io.ReadFull(f, head); err == nil && bytes.Equal(head, []byte("#!")) {
		return ProgramScript
	}
	return ProgramOther
}

// ArchiveCommand says whether an archive_command calls tusk wal-push %p
// so that its exit status is PostgreSQL's answer: "ok", "warning" (it may,
// but check cannot tell, or another command can turn a success into a
// failure) or "failed" (it calls another tool, or another command can report
// a failed wal-push as archived), with one sentence for check's line. It
// reads the command as sh would split it; identify tells what a command's
// first word runs, and isWALPush whether tusk's arguments are wal-push %p
// as tusk's command line would parse them (cmd owns that parser).
func ArchiveCommand(cmdline string, identify func(string) Program, isWALPush func(args []string) bool) (status, detail string) {
	const fix = "set archive_command = 'tusk wal-push %p' (with this repository's settings in the server's environment or a --config file) and reload"
	cmds, err := splitShell(cmdline)
	if err != nil {
		return "failed", fmt.Sprintf("is %q, which the shell cannot run (%v); %s", cmdline, err, fix)
	}
	if len(cmds) == 0 {
		return "failed", "is empty, so PostgreSQL archives nothing; " + fix
	}
	if len(cmds) == 1 {
		if inner, ok := shellDashC(cmds[0].words); ok {
			status, detail := ArchiveCommand(inner, identify, isWALPush)
			if status == "ok" {
				return "ok", cmdline
			}
			return status, fmt.Sprintf("is %q, whose shell command %s", cmdline, strings.TrimPrefix(detail, "is "))
		}
	}
	last := -1
	var script, otherUse, through string
	for i, c := range cmds {
		words := stripWrappers(c.words)
		if len(words) == 0 {
			continue
		}
		if words[0] == "!" {
			return "failed", fmt.Sprintf("is %q, whose ! inverts an exit status, so a failed upload could count as archived; %s", cmdline, fix)
		}
		switch identify(words[0]) {
		case ProgramTusk:
			if isWALPush(words[1:]) {
				last = i
			} else if otherUse == "" {
				otherUse = strings.Join(words, " ")
			}
		case ProgramScript:
			if script == "" {
				script = words[0]
			}
		default:
			// sudo -u postgres tusk wal-push %p, or another wrapper.
			for j := 1; j < len(words) && through == ""; j++ {
				if filepath.Base(words[j]) == "tusk" && isWALPush(words[j+1:]) {
					through = words[0]
				}
			}
		}
	}
	if last < 0 {
		switch {
		case otherUse != "":
			return "failed", fmt.Sprintf("is %q, which calls tusk as %q, not as tusk wal-push %%p; %s", cmdline, otherUse, fix)
		case through != "":
			return "warning", fmt.Sprintf("is %q, which calls tusk wal-push %%p through %s, a command check does not know; the WAL switch below shows whether segments reach this repository", cmdline, through)
		case script != "":
			return "warning", fmt.Sprintf("is %q, which calls %s, a script or expansion that check cannot see into; the WAL switch below shows whether segments reach this repository", cmdline, script)
		}
		return "failed", fmt.Sprintf("is %q, which calls %s, not tusk wal-push %%p; %s", cmdline, toolOf(cmds), fix)
	}
	if last > 0 && cmds[last-1].op == "||" {
		return "warning", fmt.Sprintf("is %q: tusk wal-push %%p runs only when the command before || fails, and that command's success tells PostgreSQL the segment is archived; make tusk wal-push %%p the command whose exit status counts", cmdline)
	}
	if last == len(cmds)-1 && cmds[last].op != "&" {
		return "ok", cmdline
	}
	for _, c := range cmds[last : len(cmds)-1] {
		if c.op != "&&" {
			return "failed", fmt.Sprintf("is %q: after tusk wal-push %%p comes %q, so a failed upload can reach PostgreSQL as archived and the segment be removed; make tusk wal-push %%p the last command", cmdline, c.op)
		}
	}
	if cmds[len(cmds)-1].op == "&" {
		return "failed", fmt.Sprintf("is %q: it runs in the background (&), so PostgreSQL takes every segment as archived at once; remove the &", cmdline)
	}
	return "warning", fmt.Sprintf("is %q: a command after tusk wal-push %%p decides the exit status, and its failure makes PostgreSQL archive the segment again; make tusk wal-push %%p the last command", cmdline)
}

// toolOf names the program of the command that decides the exit status.
func toolOf(cmds []shellCommand) string {
	for i := len(cmds) - 1; i >= 0; i-- {
		if w := stripWrappers(cmds[i].words); len(w) > 0 {
			return w[0]
		}
	}
	return "nothing"
}

// wrapperOptions are the commands that run the rest of their words as a
// command, and which of their options take a value.
var wrapperOptions = map[string][]string{
	"env":     {"-u", "--unset", "-C", "--chdir", "-S", "--split-string"},
	"exec":    {"-a"},
	"nice":    {"-n", "--adjustment"},
	"ionice":  {"-c", "--class", "-n", "--classdata"},
	"nohup":   nil,
	"command": nil,
	"timeout": {"-s", "--signal", "-k", "--kill-after"},
	"envdir":  nil, // daemontools', common in WAL-E and wal-g set-ups
}

// wrapperOperands is how many words a wrapper takes before the command:
// timeout's duration, envdir's folder.
var wrapperOperands = map[string]int{"timeout": 1, "envdir": 1}

// stripWrappers drops leading variable assignments and wrappers (env X=Y,
// nice -n 10, timeout 60, ...) from a simple command's words.
func stripWrappers(words []string) []string {
	for {
		for len(words) > 0 && isAssignment(words[0]) {
			words = words[1:]
		}
		if len(words) == 0 {
			return nil
		}
		name := filepath.Base(words[0])
		opts, ok := wrapperOptions[name]
		if !ok {
			return words
		}
		words = words[1:]
		for len(words) > 0 && strings.HasPrefix(words[0], "-") && words[0] != "-" {
			w := words[0]
			words = words[1:]
			if w == "--" {
				break
			}
			for _, o := range opts {
				if w == o {
					if len(words) > 0 {
						words = words[1:]
					}
					break
				}
			}
		}
		for range wrapperOperands[name] {
			if len(words) > 0 {
				words = words[1:]
			}
		}
	}
}

func isAssignment(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	if !ok || k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// shellDashC returns STRING of sh -c STRING (also bash and dash).
func shellDashC(words []string) (string, bool) {
	words = stripWrappers(words)
	if len(words) >= 3 && words[1] == "-c" {
		switch filepath.Base(words[0]) {
		case "sh", "bash", "dash":
			return words[2], true
		}
	}
	return "", false
}

// shellCommand is one simple command of a command line and the operator
// that follows it ("" after the last).
type shellCommand struct {
	words []string
	op    string
}

// splitShell splits a command line as sh does, far enough for check: words
// with quotes and backslashes removed, redirections dropped, and simple
// commands separated by ;, &, &&, ||, | and newlines. Parentheses and braces
// are dropped; expansions stay as written.
func splitShell(s string) ([]shellCommand, error) {
	var cmds []shellCommand
	var words []string
	var word strings.Builder
	inWord, dropNext := false, false
	endWord := func() {
		if !inWord {
			return
		}
		w := word.String()
		word.Reset()
		inWord = false
		if dropNext {
			dropNext = false
			return
		}
		if w == "{" || w == "}" {
			return
		}
		words = append(words, w)
	}
	endCommand := func(op string) {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, shellCommand{words: words, op: op})
		} else if n := len(cmds); n > 0 && op != "" {
			cmds[n-1].op = op
		}
		words = nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("a single quote is not closed")
			}
			word.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case ch == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("a double quote is not closed")
			}
		case ch == '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					word.WriteByte(s[i])
					inWord = true
				}
			}
		case ch == ' ' || ch == '\t':
			endWord()
		case ch == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
			i--
		case ch == '\n' || ch == ';':
			endCommand(";")
		case ch == '&' || ch == '|':
			op := string(ch)
			if i+1 < len(s) && s[i+1] == ch {
				op += op
				i++
			}
			endCommand(op)
		case ch == '(' || ch == ')':
			endWord()
		case ch == '<' || ch == '>':
			// A redirection: its file descriptor (digits just before) and
			// its target are not words of the command.
			if inWord && strings.Trim(word.String(), "0123456789") == "" {
				word.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(s) && strings.IndexByte("<>&|", s[i+1]) >= 0 {
				i++
			}
			dropNext = true
		default:
			word.WriteByte(ch)
			inWord = true
		}
	}
	endCommand("")
	return cmds, nil
}
