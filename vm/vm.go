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
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
	logf := verboseLog(cfg.Stderr)
	cfg = withDefaults(cfg)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return res, &MissingPackageError{Package: "qemu-system-x86", What: "no qemu-system-x86_64 in PATH"}
	}
	boot, err := chooseBoot(cfg, &res, logf)
	if err != nil {
		return res, err
	}
	// Tell the guest command where it runs, so results can say so.
	cfg.Env = append(append([]string(nil), cfg.Env...), "SLABBENCH_ENVIRONMENT=vm-"+res.Accel)
	job, err := prepareJob(cfg, argv)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(job.dir)

	// One pipe per channel: qemu opens the write ends as /dev/fd/N.
	readers := make([]*os.File, len(channels))
	writers := make([]*os.File, len(channels))
	for i := range channels {
		if readers[i], writers[i], err = os.Pipe(); err != nil {
			return res, err
		}
		defer readers[i].Close()
		defer writers[i].Close()
	}
	args := qemuArgs(cfg, res.Accel, boot, job)
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
	g := &guestWatch{console: newLineRing(consoleTailLines), start: start, logf: logf}
	g.follow(readers, cfg, &res)
	waitErr := cmd.Wait()
	res.Duration = time.Since(start)
	g.wg.Wait()
	logf("qemu ran %v", res.Duration.Round(time.Millisecond))

	return res, g.outcome(ctx, runCtx, waitErr, cfg.Timeout, qemuStderr)
}

// outcome classifies how qemu ended: the command's exit status came back
// (nil), or why not: cancelled, timed out, a guest panic, qemu failing, or
// the guest powering off early.
func (g *guestWatch) outcome(ctx, runCtx context.Context, waitErr error, timeout time.Duration, qemuStderr *tail.Buffer) error {
	switch {
	case g.exited:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w; qemu killed", ctx.Err())
	case runCtx.Err() != nil:
		stage := "the guest had not started the command yet"
		if g.started {
			stage = "the guest command was still running"
		}
		return fmt.Errorf("timed out after %v (%s); qemu killed, raise the timeout if the run needs longer%s", timeout, stage, g.tail(qemuStderr))
	case g.panicLine != "":
		return fmt.Errorf("guest kernel panic: %s%s", g.panicLine, g.tail(qemuStderr))
	case waitErr != nil:
		return fmt.Errorf("qemu failed: %v%s", waitErr, g.tail(qemuStderr))
	case !g.started:
		return fmt.Errorf("the guest powered off before starting the command (boot failed)%s", g.tail(qemuStderr))
	}
	return fmt.Errorf("the guest powered off without reporting the command's exit status%s", g.tail(qemuStderr))
}

// channels are the guest's output channels, one pipe each: the serial
// console, then the virtio ports of the command's stdout and stderr and
// the job's status lines.
var channels = []string{"console", "stdout", "stderr", "status"}

// verboseLog logs to w when SLABBENCH_VM_VERBOSE=1, else does nothing.
func verboseLog(w io.Writer) func(format string, args ...any) {
	verbose := os.Getenv("SLABBENCH_VM_VERBOSE") == "1"
	return func(format string, args ...any) {
		if verbose {
			fmt.Fprintf(orDiscard(w), "vm: "+format+"\n", args...)
		}
	}
}

// withDefaults fills in the CPU count, memory and timeout left zero.
func withDefaults(cfg Config) Config {
	if cfg.SMP <= 0 {
		cfg.SMP = 2
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	return cfg
}

// bootFiles are what qemu boots: the kernel image and the initramfs.
type bootFiles struct{ image, initrd string }

// chooseBoot picks the kernel, its release, the accelerator and the
// initramfs, recording them in res.
func chooseBoot(cfg Config, res *Result, logf func(string, ...any)) (bootFiles, error) {
	var err error
	res.Kernel = cfg.Kernel
	if res.Kernel == "" {
		if res.Kernel, err = DefaultKernel(); err != nil {
			return bootFiles{}, err
		}
	}
	if res.Release, err = KernelRelease(res.Kernel); err != nil {
		return bootFiles{}, err
	}
	if res.Accel, err = chooseAccel(cfg.Accel); err != nil {
		return bootFiles{}, err
	}
	initrd, err := initramfs(res.Kernel, res.Release)
	if err != nil {
		return bootFiles{}, err
	}
	b := bootFiles{image: res.Kernel, initrd: initrd}
	if vmlinux, err := bootableVmlinux(res.Kernel, res.Release); err != nil {
		logf("booting the bzImage: %v", err)
	} else if vmlinux != "" {
		b.image = vmlinux
	}
	return b, nil
}

// qemuArgs is qemu's command line for a job.
func qemuArgs(cfg Config, accel string, boot bootFiles, j *job) []string {
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-smp", strconv.Itoa(cfg.SMP), "-m", strconv.Itoa(cfg.MemoryMiB),
		"-kernel", boot.image, "-initrd", boot.initrd,
		// quiet keeps the console to warnings and worse; panic=-1 turns a
		// guest panic into a reboot, which -no-reboot turns into qemu's exit.
		"-append", "console=ttyS0 quiet loglevel=4 panic=-1 slabbench.job=" + j.dir,
		"-chardev", "file,id=console,path=/dev/fd/3", "-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
	}
	switch accel {
	case "kvm":
		args = append(args, "-accel", "kvm", "-cpu", "host")
	case "tcg-single":
		args = append(args, "-accel", "tcg,thread=single", "-cpu", "max")
	default:
		args = append(args, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	for i, name := range channels[1:] {
		args = append(args,
			"-chardev", fmt.Sprintf("file,id=%s,path=/dev/fd/%d", name, 4+i),
			"-device", fmt.Sprintf("virtserialport,bus=vser.0,chardev=%s,name=%s", name, name))
	}
	for i, share := range j.shares {
		args = append(args, "-virtfs", fmt.Sprintf("local,path=%s,mount_tag=rw%d,security_model=none,multidevs=remap", share, i))
	}
	return args
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

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Environment says where this process runs: "vm-tcg", "vm-tcg-single" or
// "vm-kvm" inside slabbench's VM (Execute sets SLABBENCH_ENVIRONMENT for
// the guest's command), else "native".
func Environment() string {
	if e := os.Getenv("SLABBENCH_ENVIRONMENT"); e != "" {
		return e
	}
	return "native"
}
