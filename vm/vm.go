// Package vm runs a host program inside a qemu virtual machine booting a
// distribution kernel (Debian's linux-image-amd64), for the parts of
// slabbench the host kernel cannot run: the relay module (no module support
// on the host), kprobe and fentry programs.
//
// The guest sees the host's whole filesystem read-only at the same paths
// (9p over virtio), with fresh proc, sysfs, devtmpfs, debugfs, tracefs and
// bpffs mounted over it, tmpfs on /run, and the host's temp dir and the
// output dir shared writable. So a test binary, its package directory, a
// module built on the host and /lib/modules all look the same inside, and
// `go test -exec` works through it. The command's stdout and stderr come
// back live over their own virtio-serial ports, separate from the kernel
// messages on the serial console; its exit status comes back over a third.
//
// The initramfs holds only busybox (from busybox-static), an /init script
// and the virtio/9p modules; it is built once per kernel release and cached.
package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/internal/tail"
)

// Config says which kernel to boot, how big a machine, and how the guest
// command runs. The zero value is usable.
type Config struct {
	// Kernel is the path of the vmlinuz to boot; "" picks the newest
	// /boot/vmlinuz-* whose modules are in /lib/modules/<release>.
	Kernel string
	// SMP is the number of virtual CPUs; 0 means 2.
	SMP int
	// MemoryMiB is the guest memory; 0 means 1024.
	MemoryMiB int
	// Accel is "kvm", "tcg", "tcg-single" or "" for automatic: the
	// environment variable SLABBENCH_VM_ACCEL if set, else kvm only where
	// /dev/kvm exists and the CPU advertises vmx or svm (a /dev/kvm
	// without them has been seen to hang guests), else tcg. tcg runs one
	// host thread per vCPU (thread=multi); tcg-single runs all vCPUs on
	// one host thread, slower, for guests that break under thread=multi
	// (Debian 6.12: docs/limits.md).
	Accel string
	// Timeout bounds the whole run, boot included; 0 means 10 minutes.
	// On expiry qemu is killed and Run returns an error saying so.
	Timeout time.Duration
	// Stdout and Stderr receive the guest command's output as it comes;
	// nil discards it.
	Stdout, Stderr io.Writer
	// OutDir is a host directory shared writable with the guest at the
	// same path; the guest command finds it in $SLABBENCH_OUT. "" gives
	// the command a scratch directory that is removed afterwards.
	OutDir string
	// Writable lists further host directories the guest may write, at the
	// same paths. The host's temp dir (os.TempDir) is always writable,
	// because `go test` keeps the test binary and its logs there.
	Writable []string
	// Env is added to the guest command's environment, which otherwise is
	// PATH, HOME=/root, SLABBENCH_VM=1, SLABBENCH_OUT and
	// SLABBENCH_ENVIRONMENT (vm-tcg, vm-tcg-single or vm-kvm).
	Env []string
	// Dir is the guest command's working directory, a host path; ""
	// means the caller's current directory.
	Dir string
}

// Result describes a finished guest run.
type Result struct {
	ExitCode int           // the guest command's exit status (128+N for signal N)
	BootTime time.Duration // from starting qemu until the guest command started
	Duration time.Duration // from starting qemu until it exited
	Accel    string        // "kvm", "tcg" or "tcg-single"
	Kernel   string        // the vmlinuz booted
	Release  string        // its release, e.g. "6.1.0-56-amd64"
}

// MissingPackageError says which Debian package provides what is missing.
type MissingPackageError struct {
	Package string // e.g. "qemu-system-x86"
	What    string // what was looked for
}

func (e *MissingPackageError) Error() string {
	return fmt.Sprintf("%s: install the Debian package %s (apt-get install %s)", e.What, e.Package, e.Package)
}

// Run boots the VM, runs argv in it and returns the command's exit code.
// argv[0] is a host path (or a name looked up in PATH in the guest); the
// program runs chrooted into the host's filesystem, so a dynamically linked
// host program works too.
func Run(ctx context.Context, cfg Config, argv []string) (exitCode int, err error) {
	res, err := Execute(ctx, cfg, argv)
	return res.ExitCode, err
}

// consoleTailLines is how many console lines an error shows.
const consoleTailLines = 40

// Execute is Run returning the details of the run as well. The error is
// nil whenever the command ran to completion, whatever its exit code.
func Execute(ctx context.Context, cfg Config, argv []string) (Result, error) {
	res := Result{ExitCode: -1}
	if len(argv) == 0 {
		return res, errors.New("no command to run")
	}
	verbose := os.Getenv("SLABBENCH_VM_VERBOSE") == "1"
	logf := func(format string, args ...any) {
		if verbose {
			fmt.Fprintf(orDiscard(cfg.Stderr), "vm: "+format+"\n", args...)
		}
	}
	if cfg.SMP <= 0 {
		cfg.SMP = 2
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}

	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return res, &MissingPackageError{Package: "qemu-system-x86", What: "no qemu-system-x86_64 in PATH"}
	}
	res.Kernel = cfg.Kernel
	if res.Kernel == "" {
		if res.Kernel, err = DefaultKernel(); err != nil {
			return res, err
		}
	}
	if res.Release, err = KernelRelease(res.Kernel); err != nil {
		return res, err
	}
	if res.Accel, err = chooseAccel(cfg.Accel); err != nil {
		return res, err
	}
	initrd, err := initramfs(res.Kernel, res.Release)
	if err != nil {
		return res, err
	}
	bootImage := res.Kernel
	if vmlinux, err := bootableVmlinux(res.Kernel, res.Release); err != nil {
		logf("booting the bzImage: %v", err)
	} else if vmlinux != "" {
		bootImage = vmlinux
	}

	// Tell the guest command where it runs, so results can say so.
	cfg.Env = append(append([]string(nil), cfg.Env...), "SLABBENCH_ENVIRONMENT=vm-"+res.Accel)
	job, err := prepareJob(cfg, argv)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(job.dir)

	// One pipe per channel: qemu opens the write ends as /dev/fd/N.
	names := []string{"console", "stdout", "stderr", "status"}
	readers := make([]*os.File, len(names))
	writers := make([]*os.File, len(names))
	for i := range names {
		if readers[i], writers[i], err = os.Pipe(); err != nil {
			return res, err
		}
		defer readers[i].Close()
		defer writers[i].Close()
	}

	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-smp", strconv.Itoa(cfg.SMP), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-kernel", bootImage, "-initrd", initrd,
		// quiet keeps the console to warnings and worse; panic=-1 turns a
		// guest panic into a reboot, which -no-reboot turns into qemu's exit.
		"-append", "console=ttyS0 quiet loglevel=4 panic=-1 slabbench.job=" + job.dir,
		"-chardev", "file,id=console,path=/dev/fd/3", "-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
	}
	switch res.Accel {
	case "kvm":
		args = append(args, "-accel", "kvm", "-cpu", "host")
	case "tcg-single":
		args = append(args, "-accel", "tcg,thread=single", "-cpu", "max")
	default:
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	for i, name := range names[1:] {
		args = append(args,
			"-chardev", fmt.Sprintf("file,id=%s,path=/dev/fd/%d", name, 4+i),
			"-device", fmt.Sprintf("virtserialport,bus=vser.0,chardev=%s,name=%s", name, name))
	}
	for i, share := range job.shares {
		args = append(args, "-virtfs", fmt.Sprintf("local,path=%s,mount_tag=rw%d,security_model=none,multidevs=remap", share, i))
	}
	logf("%s %s", qemu, strings.Join(args, " "))

	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, qemu, args...)
	cmd.ExtraFiles = writers
	qemuStderr := &tail.Buffer{Max: 8 << 10}
	cmd.Stderr = qemuStderr
	// If slabbench dies, qemu must not live on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("starting qemu: %w", err)
	}
	for _, w := range writers {
		w.Close() // qemu holds them now; EOF arrives when it exits
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		console   = newLineRing(consoleTailLines)
		fault     faultHead
		panicLine string
		started   bool
		exited    bool
	)
	copyTo := func(r io.Reader, w io.Writer) {
		defer wg.Done()
		io.Copy(orDiscard(w), r)
	}
	wg.Add(4)
	go copyTo(readers[1], cfg.Stdout)
	go copyTo(readers[2], cfg.Stderr)
	go func() {
		defer wg.Done()
		lines := bufio.NewScanner(readers[0])
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			line := strings.TrimRight(lines.Text(), "\r")
			logf("console: %s", line)
			mu.Lock()
			console.add(line)
			fault.add(line)
			if panicLine == "" && strings.Contains(line, "Kernel panic") {
				panicLine = line
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, readers[0])
	}()
	go func() {
		defer wg.Done()
		lines := bufio.NewScanner(readers[3])
		for lines.Scan() {
			line := lines.Text()
			mu.Lock()
			switch {
			case line == "start":
				started = true
				res.BootTime = time.Since(start)
				logf("booted in %v (%s, %d CPUs, kernel %s)", res.BootTime.Round(time.Millisecond), res.Accel, cfg.SMP, res.Release)
			case strings.HasPrefix(line, "exit "):
				if code, err := strconv.Atoi(strings.TrimPrefix(line, "exit ")); err == nil {
					res.ExitCode, exited = code, true
				}
			}
			mu.Unlock()
		}
	}()

	waitErr := cmd.Wait()
	res.Duration = time.Since(start)
	wg.Wait()
	logf("qemu ran %v", res.Duration.Round(time.Millisecond))

	tail := func() string {
		var b strings.Builder
		if s := qemuStderr.String(); s != "" {
			fmt.Fprintf(&b, "\nqemu stderr:\n%s", s)
		}
		if len(fault.lines) > 0 {
			fmt.Fprintf(&b, "\nthe guest's first fault report began:\n%s", strings.Join(fault.lines, "\n"))
		}
		if lines := console.lines(); len(lines) > 0 {
			fmt.Fprintf(&b, "\nlast guest console lines:\n%s", strings.Join(lines, "\n"))
		}
		return b.String()
	}
	switch {
	case exited:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%w; qemu killed", ctx.Err())
	case runCtx.Err() != nil:
		stage := "the guest had not started the command yet"
		if started {
			stage = "the guest command was still running"
		}
		return res, fmt.Errorf("timed out after %v (%s); qemu killed, raise the timeout if the run needs longer%s", cfg.Timeout, stage, tail())
	case panicLine != "":
		return res, fmt.Errorf("guest kernel panic: %s%s", panicLine, tail())
	case waitErr != nil:
		return res, fmt.Errorf("qemu failed: %v%s", waitErr, tail())
	case !started:
		return res, fmt.Errorf("the guest powered off before starting the command (boot failed)%s", tail())
	default:
		return res, fmt.Errorf("the guest powered off without reporting the command's exit status%s", tail())
	}
}

// chooseAccel resolves Config.Accel.
func chooseAccel(accel string) (string, error) {
	source := "Config.Accel"
	if accel == "" {
		accel, source = os.Getenv("SLABBENCH_VM_ACCEL"), "SLABBENCH_VM_ACCEL"
	}
	switch accel {
	case "kvm", "tcg", "tcg-single":
		return accel, nil
	case "":
		if kvmUsable() {
			return "kvm", nil
		}
		return "tcg", nil
	}
	return "", fmt.Errorf("%s=%q: want kvm, tcg, tcg-single or empty for automatic", source, accel)
}

// kvmUsable reports whether /dev/kvm exists and the CPU advertises hardware
// virtualization; a /dev/kvm on a CPU without vmx/svm (nested setups) can
// accept a guest and then hang it.
func kvmUsable() bool {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return false
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		if key, flags, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(key) == "flags" {
			for _, flag := range strings.Fields(flags) {
				if flag == "vmx" || flag == "svm" {
					return true
				}
			}
			return false
		}
	}
	return false
}

// job is the per-run directory the guest reads its instructions from: it
// lies in the host temp dir, which the guest sees at the same path.
type job struct {
	dir    string   // holds job.sh and shares
	shares []string // writable host dirs, parents first; the guest mounts share i (tag rwI) at shares[i]
}

func prepareJob(cfg Config, argv []string) (*job, error) {
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	prog := argv[0]
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(dir, prog)
		}
		if _, err := os.Stat(prog); err != nil {
			return nil, fmt.Errorf("program to run: %w", err)
		}
	}

	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return nil, fmt.Errorf("host temp dir: %w", err)
	}
	jobDir, err := os.MkdirTemp(tmp, "slabbench-vm-")
	if err != nil {
		return nil, err
	}
	j := &job{dir: jobDir}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(jobDir)
		}
	}()
	if strings.ContainsAny(jobDir, " \t\n") {
		return nil, fmt.Errorf("temp dir %q contains white space, which the kernel command line cannot carry; set TMPDIR", jobDir)
	}

	outDir := cfg.OutDir
	if outDir == "" {
		outDir = filepath.Join(jobDir, "out")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	// Real paths: a share mounted on a symlink in the guest would follow
	// it outside the host root.
	writable := []string{tmp}
	for _, d := range append([]string{outDir}, cfg.Writable...) {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return nil, fmt.Errorf("writable dir: %w", err)
		}
		if real, err = filepath.Abs(real); err != nil {
			return nil, err
		}
		if real == "/" {
			return nil, errors.New("the host root cannot be shared writable")
		}
		writable = append(writable, real)
	}
	sort.Strings(writable)
	var shares strings.Builder
	for _, d := range writable {
		if n := len(j.shares); n > 0 && (d == j.shares[n-1] || strings.HasPrefix(d, j.shares[n-1]+"/")) {
			continue // inside a share already
		}
		fmt.Fprintf(&shares, "rw%d %s\n", len(j.shares), d)
		j.shares = append(j.shares, d)
	}
	if err := os.WriteFile(filepath.Join(jobDir, "shares"), []byte(shares.String()), 0o644); err != nil {
		return nil, err
	}
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}

	env := append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
	}, cfg.Env...)
	env = append(env, "SLABBENCH_VM=1", "SLABBENCH_OUT="+absOut)
	var script strings.Builder
	script.WriteString("# written by slabbench's vm package; run by /bin/sh in the guest\n")
	fmt.Fprintf(&script, "cd %s || exit 125\nexec /usr/bin/env -i", shellQuote(dir))
	for _, kv := range dedupeEnv(env) {
		script.WriteString(" " + shellQuote(kv))
	}
	script.WriteString(" " + shellQuote(prog))
	for _, arg := range argv[1:] {
		script.WriteString(" " + shellQuote(arg))
	}
	script.WriteString("\n")
	if err := os.WriteFile(filepath.Join(jobDir, "job.sh"), []byte(script.String()), 0o644); err != nil {
		return nil, err
	}
	ok = true
	return j, nil
}

// dedupeEnv keeps the last value of each variable, in first-seen order.
func dedupeEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if i, seen := index[name]; seen {
			out[i] = kv
			continue
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	return out
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// faultMarkers start the kernel's report of a fault. A panic's last
// lines are its stack; what faulted is at the report's start.
var faultMarkers = []string{"BUG:", "Oops:", "general protection fault", "invalid opcode", "int3:",
	"------------[ cut here ]------------", "kernel BUG at", "Unable to handle"}

// faultHeadLines is how many lines of the first fault report an error
// shows.
const faultHeadLines = 20

// faultHead keeps the first faultHeadLines lines of the first fault
// report on the console.
type faultHead struct{ lines []string }

func (h *faultHead) add(line string) {
	if len(h.lines) >= faultHeadLines {
		return
	}
	if len(h.lines) == 0 && !slices.ContainsFunc(faultMarkers, func(m string) bool { return strings.Contains(line, m) }) {
		return
	}
	h.lines = append(h.lines, line)
}

// lineRing keeps the last n lines of the console for error messages.
type lineRing struct {
	buf  []string
	next int
	full bool
}

func newLineRing(n int) *lineRing { return &lineRing{buf: make([]string, n)} }

func (r *lineRing) add(line string) {
	r.buf[r.next] = line
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) lines() []string {
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}
