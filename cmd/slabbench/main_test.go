package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slabbench/slabbench/internal/testenv"
)

var binary string

// holdFilesEnv makes the test binary a program that holds open files:
// "N D" opens N files of /dev/null, waits D, opens N more, waits D, then
// exits (the workload of TestTopFollowsACommand, started by top as a
// grandchild): the second N are a step of exactly N whatever else the
// program has open.
const holdFilesEnv = "SLABBENCH_TEST_HOLD_FILES"

func TestMain(m *testing.M) {
	if spec := os.Getenv(holdFilesEnv); spec != "" {
		os.Exit(holdFiles(spec))
	}
	// In the VM (go test -exec) the toolchain's cache is read-only: use
	// the binary make built.
	if prebuilt := os.Getenv("SLABBENCH_BIN"); prebuilt != "" {
		binary = prebuilt
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "slabbench-cli")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the not-root test runs it as nobody
	binary = filepath.Join(dir, "slabbench")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// oneLineError runs the CLI and checks it fails with exactly one line on
// stderr containing every want, and no Go stack trace.
func oneLineError(t *testing.T, cmd *exec.Cmd, want ...string) {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("%v succeeded, want an error", cmd.Args)
	}
	msg := strings.TrimRight(stderr.String(), "\n")
	if strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") {
		t.Fatalf("want one error line, got:\n%s", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func TestNotRootIsOneLine(t *testing.T) {
	testenv.RequireRoot(t) // to drop to another user
	cmd := exec.Command(binary, "capture", "--ops", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	oneLineError(t, cmd, "root", "sudo")
}

func TestUnsupportedAttachIsOneLine(t *testing.T) {
	testenv.RequireRoot(t)
	if testenv.HasKprobes() {
		t.Skip("this kernel has kprobes")
	}
	oneLineError(t, exec.Command(binary, "capture", "--attach", "kprobe", "--ops", "100"),
		"kprobe", "--attach tracepoint", "slabbench vm")
}

func TestBadFlagsNameTheFix(t *testing.T) {
	oneLineError(t, exec.Command(binary, "capture", "--events", "kmalloc,bogus"), "bogus", "kmem_cache_free")
	oneLineError(t, exec.Command(binary, "capture", "--truth", "maybe"), "--truth")
	oneLineError(t, exec.Command(binary, "capture", "--path", "pigeon", "--ops", "10"), "pigeon", "ringbuf")
	oneLineError(t, exec.Command(binary, "capture", "--workload", "nope", "--ops", "10"), "nope")
}

// TestCaptureJSONContract checks the fields later tools script against.
func TestCaptureJSONContract(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := exec.Command(binary, "capture", "--path", "perfbuf", "--attach", "rawtp", "--workload", "eventfd",
		"--ops", "3000", "--subbuf-size", "16KiB", "--subbufs", "4", "--json").Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"path", "attach", "workload", "ops", "duration_ns", "cpus", "buffer_bytes",
		"captured", "lost", "truth", "kinds"} {
		if _, ok := r[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	kinds := r["kinds"].(map[string]any)
	for _, k := range []string{"kmalloc", "kfree", "kmem_cache_alloc", "kmem_cache_free"} {
		kr, ok := kinds[k].(map[string]any)
		if !ok {
			t.Fatalf("kinds lacks %s", k)
		}
		if kr["captured"].(float64)+kr["lost"].(float64) != kr["truth"].(float64) {
			t.Errorf("%s: %v", k, kr)
		}
	}
	if r["ops"].(float64) != 3000 || r["path"] != "perfbuf" || r["attach"] != "rawtp" {
		t.Errorf("unexpected header fields: %v", r)
	}
}

// TestReportOnResultsGlob runs the README's report command shape: a glob
// over results/*.txt, which matches the results files and not make
// bench's benchstat tables beside them (*.benchstat).
func TestReportOnResultsGlob(t *testing.T) {
	files, _ := filepath.Glob("../../results/*.txt")
	if len(files) == 0 {
		t.Fatal("no results files in ../../results")
	}
	out := filepath.Join(t.TempDir(), "REPORT.md")
	cmd := exec.Command(binary, append([]string{"report", "-o", out}, files...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "### Headline") {
		t.Fatalf("report not written (%v)", err)
	}
}

// holdFiles holds files as holdFilesEnv says ("N D").
func holdFiles(spec string) int {
	f := strings.Fields(spec)
	var n int
	var d time.Duration
	var err error
	if len(f) == 2 {
		if n, err = strconv.Atoi(f[0]); err == nil {
			d, err = time.ParseDuration(f[1])
		}
	}
	if len(f) != 2 || err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: want \"N D\" (e.g. \"100 3s\"): %v\n", holdFilesEnv, spec, err)
		return 2
	}
	var files []*os.File
	for range 2 {
		for range n {
			f, err := os.Open(os.DevNull)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			files = append(files, f)
		}
		time.Sleep(d)
	}
	for _, f := range files {
		f.Close()
	}
	return 0
}
