// Package testenv holds the checks tests use to skip, with a reason, when
// the machine cannot run them (no root, no BPF, no kernel feature).
package testenv

import (
	"os"
	"testing"
)

// RequireRoot skips t unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF programs and perf counting events): run go test as root")
	}
}

// HasKprobes reports whether the running kernel can create kprobes.
func HasKprobes() bool {
	for _, p := range []string{"/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
