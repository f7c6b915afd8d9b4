package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/vm"
)

func init() {
	register("vm", "run slabbench (or, with --exec, any host program) inside a qemu VM", runVM)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// checkVMConfig checks the flags that have a range.
func checkVMConfig(cfg vm.Config) error {
	switch {
	case cfg.SMP < 1 || cfg.SMP > 64:
		return fmt.Errorf("--smp %d: want 1..64 virtual CPUs", cfg.SMP)
	case cfg.MemoryMiB < 256 || cfg.MemoryMiB > 65536:
		return fmt.Errorf("--memory %d: want 256..65536 MiB", cfg.MemoryMiB)
	case cfg.Timeout <= 0:
		return fmt.Errorf("--timeout %v: want > 0", cfg.Timeout)
	}
	switch cfg.Accel {
	case "", "kvm", "tcg", "tcg-single":
		return nil
	}
	return fmt.Errorf("--accel %q: want kvm, tcg or tcg-single (or leave it out for automatic)", cfg.Accel)
}

// runVM boots Debian's kernel in qemu and runs this slabbench binary there
// with the arguments after the flags, or, with --exec, any program: the
// latter is a `go test -exec` wrapper, since go runs the wrapper in the
// package directory and the guest sees the host's files at the same paths.
func runVM(args []string) error {
	fs := flag.NewFlagSet("vm", flag.ContinueOnError)
	var cfg vm.Config
	var writable stringList
	fs.IntVar(&cfg.SMP, "smp", 2, "virtual CPUs")
	fs.IntVar(&cfg.MemoryMiB, "memory", 1024, "guest memory in MiB")
	fs.StringVar(&cfg.Kernel, "kernel", os.Getenv("SLABBENCH_VM_KERNEL"), "vmlinuz to boot (default: $SLABBENCH_VM_KERNEL, else the newest /boot/vmlinuz-* with /lib/modules/<release>)")
	fs.StringVar(&cfg.Accel, "accel", "", "kvm, tcg (one host thread per vCPU) or tcg-single (one host thread in all; needed for Debian 6.12 guests) (default: $SLABBENCH_VM_ACCEL, else kvm only if the CPU advertises vmx/svm)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "limit for the whole run, boot included")
	fs.StringVar(&cfg.OutDir, "out", "", "host dir the guest may write, passed as $SLABBENCH_OUT (default: a scratch dir)")
	fs.Var(&writable, "rw", "further host `dir` the guest may write (repeatable); the host temp dir always is")
	execMode := fs.Bool("exec", false, "run the program given after the flags instead of slabbench (a go test -exec wrapper)")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: slabbench vm [flags] -- <slabbench command> [args...]\n")
		fmt.Fprintf(out, "       slabbench vm [flags] --exec PROG [args...]\n")
		fmt.Fprintf(out, "       CGO_ENABLED=0 go test -exec '/path/to/slabbench vm --exec' ./pkg\n\n")
		fmt.Fprintf(out, "Boots the host's Debian kernel in qemu (packages qemu-system-x86, linux-image-amd64,\n")
		fmt.Fprintf(out, "busybox-static) with the host filesystem visible read-only at the same paths, runs\n")
		fmt.Fprintf(out, "the command in the current directory and exits with its exit code.\n")
		fmt.Fprintf(out, "SLABBENCH_VM_VERBOSE=1 logs the qemu command line, boot time and kernel console.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkVMConfig(cfg); err != nil {
		return err
	}
	cfg.Writable = writable
	if fs.NArg() == 0 {
		fs.Usage()
		if *execMode {
			return errors.New("--exec needs a program to run")
		}
		return errors.New("no slabbench command given to run in the VM")
	}
	argv := fs.Args()
	if !*execMode {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this slabbench binary: %w", err)
		}
		argv = append([]string{self}, argv...)
	}

	// The guest runs chrooted into the host's filesystem, so even a
	// dynamically linked program finds its libraries; pass the caller's
	// environment on as a `go test -exec` wrapper should.
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PWD", "OLDPWD", "SHLVL", "_":
		default:
			cfg.Env = append(cfg.Env, kv)
		}
	}
	cfg.Stdout, cfg.Stderr = os.Stdout, os.Stderr

	// Ctrl-C ends qemu (the guest's output so far is already out).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := vm.Run(ctx, cfg, argv)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
