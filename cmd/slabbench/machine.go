package main

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/vm"
)

// thisMachine is where slabbench runs, named as a results file names its
// machine (report.Machine): the CPU model as /proc/cpuinfo gives it (the
// testing package's `cpu:` line reads the same), the CPU count, the
// kernel and the environment.
func thisMachine() report.Machine {
	m := report.Machine{Environment: vm.Environment(), CPU: "unknown", CPUs: runtime.NumCPU(), Kernel: "unknown"}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
