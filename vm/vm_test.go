package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireVM skips where the packages the VM needs are not installed; CI
// installs them, so there these tests run.
func requireVM(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (Debian package qemu-system-x86)")
	}
	if _, err := DefaultKernel(); err != nil {
		t.Skipf("no bootable kernel: %v", err)
	}
	if _, err := staticBusybox(); err != nil {
		t.Skipf("%v", err)
	}
}

// guestProgram is a static Go program that reports on the guest it runs in.
const guestProgram = `package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	var uts syscall.Utsname
	syscall.Uname(&uts)
	release := ""
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		release += string(rune(c))
	}
	wd, _ := os.Getwd()
	fmt.Println("release", release)
	fmt.Println("cwd", wd)
	fmt.Println("args", os.Args[1:])
	if _, err := os.Stat("/sys/kernel/debug/tracing"); err != nil {
		fmt.Println("debugfs:", err)
	}
	id, err := os.ReadFile("/sys/kernel/tracing/events/kmem/kmalloc/id")
	if err != nil {
		fmt.Println("tracefs:", err)
	}
	fmt.Printf("kmalloc id %s", id)
	if err := os.WriteFile(filepath.Join(os.Getenv("SLABBENCH_OUT"), "result.txt"), []byte("written in the guest\n"), 0o644); err != nil {
		fmt.Println("out:", err)
	}
	fmt.Fprintln(os.Stderr, "this goes to stderr")
	os.Exit(3)
}
`

func buildGuestProgram(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module guestprogram\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(guestProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "guestprogram")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest program: %v\n%s", err, out)
	}
	return bin
}

func TestRunBringsBackOutputExitCodeAndFiles(t *testing.T) {
	requireVM(t)
	prog := buildGuestProgram(t)
	kernel, _ := DefaultKernel()
	release, err := KernelRelease(kernel)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	workDir := t.TempDir()
	var stdout, stderr bytes.Buffer
	res, err := Execute(context.Background(), Config{
		Stdout:  &stdout,
		Stderr:  &stderr,
		OutDir:  out,
		Dir:     workDir,
		Timeout: 3 * time.Minute,
	}, []string{prog, "one", "two words"})
	if err != nil {
		t.Fatalf("Execute: %v\nstderr: %s", err, stderr.String())
	}
	t.Logf("boot %v, whole run %v (%s)", res.BootTime, res.Duration, res.Accel)
	if res.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", res.ExitCode)
	}
	for _, want := range []string{
		"release " + release + "\n",
		"cwd " + workDir + "\n",
		"args [one two words]\n",
		"kmalloc id ",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("guest stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, bad := range []string{"debugfs:", "tracefs:", "out:", "stderr"} {
		if strings.Contains(stdout.String(), bad) {
			t.Errorf("guest stdout has %q:\n%s", bad, stdout.String())
		}
	}
	if got := stderr.String(); got != "this goes to stderr\n" {
		t.Errorf("guest stderr %q, want only the program's line", got)
	}
	if b, err := os.ReadFile(filepath.Join(out, "result.txt")); err != nil || string(b) != "written in the guest\n" {
		t.Errorf("file from $SLABBENCH_OUT: %q, %v", b, err)
	}
	if res.BootTime <= 0 || res.BootTime > res.Duration {
		t.Errorf("boot time %v not within the run's %v", res.BootTime, res.Duration)
	}
}

func TestRunTimesOut(t *testing.T) {
	requireVM(t)
	start := time.Now()
	_, err := Run(context.Background(), Config{Timeout: 2 * time.Second}, []string{"sleep", "600"})
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("Run returned after %v; qemu should be killed at the timeout", elapsed)
	}
}

func TestRunReportsGuestPanic(t *testing.T) {
	requireVM(t)
	_, err := Run(context.Background(), Config{Timeout: 3 * time.Minute},
		[]string{"/bin/sh", "-c", "echo c > /proc/sysrq-trigger; sleep 600"})
	if err == nil || !strings.Contains(err.Error(), "guest kernel panic") {
		t.Fatalf("err = %v, want a guest kernel panic", err)
	}
}

func TestRunRejectsMissingProgram(t *testing.T) {
	requireVM(t)
	_, err := Run(context.Background(), Config{}, []string{"/nonexistent/program"})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist before booting", err)
	}
}

func TestKernelReleaseMatchesModules(t *testing.T) {
	kernel, err := DefaultKernel()
	if err != nil {
		t.Skipf("no kernel: %v", err)
	}
	release, err := KernelRelease(kernel)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-"); release != want {
		t.Errorf("KernelRelease(%s) = %q, want %q", kernel, release, want)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-56-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
		{"6.12.0-1-amd64", "6.2.0-1-amd64", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	kernel, err := DefaultKernel()
	if err != nil {
		t.Skipf("no kernel: %v", err)
	}
	release, err := KernelRelease(kernel)
	if err != nil {
		t.Fatal(err)
	}
	files, err := resolveModules(ModulesDir(kernel, release), release, guestModules)
	if err != nil {
		t.Fatal(err)
	}
	position := map[string]int{}
	for i, f := range files {
		position[moduleName(f)] = i
	}
	for _, pair := range [][2]string{{"9pnet", "9pnet_virtio"}, {"9pnet", "9p"}, {"netfs", "9p"}} {
		dep, user := pair[0], pair[1]
		pd, okd := position[dep]
		pu, oku := position[user]
		if okd && oku && pd > pu {
			t.Errorf("%s loaded after %s: %v", dep, user, files)
		}
	}
	if _, ok := position["9p"]; !ok {
		t.Errorf("9p missing from %v", files)
	}
}

func TestChooseAccel(t *testing.T) {
	for _, accel := range []string{"kvm", "tcg", "tcg-single"} {
		got, err := chooseAccel(accel)
		if err != nil || got != accel {
			t.Errorf("chooseAccel(%q) = %q, %v; want %q", accel, got, err, accel)
		}
	}
	_, err := chooseAccel("tcg,thread=single")
	if err == nil || !strings.Contains(err.Error(), "tcg-single") {
		t.Errorf("chooseAccel of a raw qemu option: error %v, want one naming the accepted values", err)
	}
}

func TestFaultHeadKeepsTheFirstReport(t *testing.T) {
	var h faultHead
	console := []string{
		"[   41.90] slabrelay: loaded",
		"[   42.37] int3: 0000 [#1] PREEMPT SMP NOPTI",
		"[   42.37] CPU: 1 PID: 245 Comm: relaytrace.test Tainted: G           OE      6.1.0-56-amd64 #1",
		"[   42.37] RIP: 0010:kmem_cache_alloc+0x152/0x300",
	}
	for i := 0; i < 2*faultHeadLines; i++ {
		console = append(console, fmt.Sprintf("[   42.37]  ? frame_%d+0x1/0x2", i))
	}
	console = append(console, "[   42.38] BUG: a second report")
	for _, l := range console {
		h.add(l)
	}
	if len(h.lines) != faultHeadLines {
		t.Fatalf("kept %d lines, want %d", len(h.lines), faultHeadLines)
	}
	if !strings.Contains(h.lines[0], "int3: 0000") || !strings.Contains(h.lines[2], "RIP: 0010:kmem_cache_alloc") {
		t.Errorf("kept %q..., want the report from its int3 line on", h.lines[:3])
	}
}
