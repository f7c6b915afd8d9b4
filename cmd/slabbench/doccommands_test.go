package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// docPages are the pages whose sh blocks a user copies commands from.
var docPages = []string{"README.md", "docs/*.md", "results/README.md"}

// docCommand is one line of an sh block, with where it was found.
type docCommand struct {
	line  string
	where string
}

// docCommands returns every command line of the sh blocks in docPages,
// each once, relative to the repository root.
func docCommands(t *testing.T, root string) []docCommand {
	t.Helper()
	var cmds []docCommand
	seen := map[string]bool{}
	for _, pattern := range docPages {
		pages, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, page := range pages {
			f, err := os.Open(page)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			inSh := false
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				switch {
				case strings.HasPrefix(line, "```"):
					inSh = !inSh && line == "```sh"
				case inSh && line != "" && !seen[line]:
					seen[line] = true
					rel, _ := filepath.Rel(root, page)
					cmds = append(cmds, docCommand{line, rel + ":" + strconv.Itoa(n)})
				}
			}
			f.Close()
		}
	}
	return cmds
}

// whyNotRun says why a documented command is not run by this test, or ""
// when it is cheap enough to run verbatim.
func whyNotRun(line string) string {
	fields := strings.Fields(line)
	switch {
	case strings.Contains(line, "make "):
		return "a make target: CI runs make test, make bench is the long job"
	case strings.Contains(line, " vm ") || strings.Contains(line, "go test"):
		return "runs in the VM or runs a test suite: make test covers it"
	case len(fields) >= 2 && fields[0] == "bin/slabbench" && fields[1] == "calibrate":
		return "minutes long, and writes this machine's calibration: TestCalibrateThenSize runs a short one"
	case len(fields) >= 2 && fields[0] == "bin/slabbench" && fields[1] == "top" && !strings.Contains(line, "--duration"):
		return "runs until q: TestTopInteractive drives it in tmux"
	case fields[0] == "bin/slabbench" || strings.HasPrefix(line, "go tool "):
		return ""
	}
	return "not a slabbench or go tool command"
}

// needsRoot says whether a documented command captures (and so needs root).
func needsRoot(line string) bool {
	f := strings.Fields(line)
	return len(f) >= 2 && (f[1] == "capture" || f[1] == "top" || f[1] == "size" && strings.Contains(line, "--observe"))
}

// cloneLike makes a directory laid out as a fresh clone after make
// build, as far as the cheap commands read it: bin/slabbench, the
// committed results files, and the module files go tool needs.
func cloneLike(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(dir, "bin", "slabbench")); err != nil {
		t.Fatal(err)
	}
	copies, _ := filepath.Glob(filepath.Join(root, "results", "*.txt"))
	copies = append(copies, filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum"))
	for _, src := range copies {
		rel, _ := filepath.Rel(root, src)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDocCommands runs, verbatim, every cheap command the README and docs
// show (captures, top with a duration, size, report, benchstat) in a
// directory laid out as a fresh clone, and checks that each succeeds. The
// report command must write the same REPORT.md with and without BENCH
// set in the shell.
func TestDocCommands(t *testing.T) {
	if os.Getenv("SLABBENCH_BIN") != "" {
		t.Skip("in the VM the module cache is read-only; the host runs this test")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := cloneLike(t, root)
	var ran int
	for _, c := range docCommands(t, root) {
		if why := whyNotRun(c.line); why != "" {
			t.Logf("not run: %s (%s): %s", c.line, c.where, why)
			continue
		}
		if needsRoot(c.line) && os.Geteuid() != 0 {
			t.Logf("not run: %s (%s): needs root", c.line, c.where)
			continue
		}
		envs := [][]string{nil}
		if strings.Contains(c.line, " report ") {
			envs = append(envs, []string{"BENCH=full"})
		}
		var reports [][]byte
		for _, env := range envs {
			out := runDocCommand(t, dir, c, env)
			ran++
			if strings.Contains(c.line, " report ") {
				reports = append(reports, reportWritten(t, dir, c, out))
			}
		}
		if len(reports) == 2 && !bytes.Equal(reports[0], reports[1]) {
			t.Errorf("%s wrote another REPORT.md with BENCH=full set: the report must depend on the rows only", c.line)
		}
	}
	if ran < 8 {
		t.Errorf("ran %d documented commands, want the README's cheap ones (at least 8)", ran)
	}
}

// runDocCommand runs one documented line with bash in dir, as a user
// would type it, and returns its output.
func runDocCommand(t *testing.T, dir string, c docCommand, env []string) []byte {
	t.Helper()
	cmd := exec.Command("bash", "-c", c.line)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("%s (%s, env %v): %v\n%s", c.line, c.where, env, err, out.String())
	} else {
		t.Logf("ran: %s (%s, env %v)", c.line, c.where, env)
	}
	return out.Bytes()
}

// reportWritten returns the REPORT.md a documented report command wrote.
func reportWritten(t *testing.T, dir string, c docCommand, out []byte) []byte {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "results", "REPORT.md"))
	if err != nil {
		t.Fatalf("%s wrote no results/REPORT.md: %v\n%s", c.line, err, out)
	}
	return got
}
