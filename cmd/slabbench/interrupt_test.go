package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
)

// ourPrograms counts loaded BPF programs with the names slab.c gives its
// programs (the kernel keeps 15 characters).
func ourPrograms(t *testing.T) int {
	t.Helper()
	n := 0
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			continue
		}
		for _, prefix := range []string{"tp_", "rawtp_", "kprobe_", "fentry_", "fexit_"} {
			if strings.HasPrefix(info.Name, prefix) && (strings.Contains(info.Name, "kmalloc") ||
				strings.Contains(info.Name, "kfree") || strings.Contains(info.Name, "kmem_cache")) {
				n++
			}
		}
	}
}

func moduleLoaded(t *testing.T) bool {
	f, err := os.Open("/proc/modules")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), relaytrace.ModuleName+" ") {
			return true
		}
	}
	return false
}

// interrupt starts a long capture, sends SIGINT once it runs and checks
// the process ends promptly with the interrupted status.
func interrupt(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"capture", "--workload", "none", "--duration", "60s"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // loaded and attached (the VM is slow)
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 130 {
			t.Fatalf("after SIGINT: %v, want exit status 130; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("capture did not end within 30s of SIGINT")
	}
}

func TestInterruptDetachesBPF(t *testing.T) {
	testenv.RequireRoot(t)
	before := ourPrograms(t)
	interrupt(t, "--path", "ringbuf", "--attach", "rawtp")
	// The kernel frees a program after its last reference goes, through
	// RCU: give it a moment.
	after := ourPrograms(t)
	for i := 0; i < 50 && after != before; i++ {
		time.Sleep(100 * time.Millisecond)
		after = ourPrograms(t)
	}
	if after != before {
		t.Fatalf("%d slab BPF programs loaded before, %d after the interrupted capture", before, after)
	}
}

func TestInterruptUnloadsRelay(t *testing.T) {
	if err := relaytrace.Available(""); err != nil {
		t.Skip("relay path unavailable here (the VM tests run it): ", err)
	}
	interrupt(t, "--path", "relay")
	if moduleLoaded(t) {
		t.Fatal("slabrelay is still loaded after the interrupted capture")
	}
}
