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

// ourPrograms lists the IDs of loaded BPF programs with the names slab.c
// gives its programs (the kernel keeps 15 characters).
func ourPrograms(t *testing.T) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids
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
				ids = append(ids, id)
			}
		}
	}
}

// programMark is the highest slab program ID loaded now: the kernel never
// reuses a program ID, so every program loaded later has a higher one,
// whatever an earlier test's programs still being freed do meanwhile.
func programMark(t *testing.T) ebpf.ProgramID {
	t.Helper()
	var mark ebpf.ProgramID
	for _, id := range ourPrograms(t) {
		mark = max(mark, id)
	}
	return mark
}

// programsLeft waits for every slab program loaded after mark to be gone
// (the kernel frees a program after its last reference goes, through
// RCU) and returns how many are still loaded after 5 s.
func programsLeft(t *testing.T, mark ebpf.ProgramID) int {
	t.Helper()
	left := func() int {
		n := 0
		for _, id := range ourPrograms(t) {
			if id > mark {
				n++
			}
		}
		return n
	}
	n := left()
	for i := 0; i < 50 && n > 0; i++ {
		time.Sleep(100 * time.Millisecond)
		n = left()
	}
	return n
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

// interrupt starts a long capture or top (command), sends SIGINT once it
// runs and checks the process ends promptly with status code: capture's
// window was cut short (130), while Ctrl-C is how top normally ends (0).
func interrupt(t *testing.T, command string, code int, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{command, "--workload", "none", "--duration", "60s"}, args...)...)
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
		got := 0
		if errors.As(err, &exit) {
			got = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("%s after SIGINT: %v", command, err)
		}
		if got != code {
			t.Fatalf("%s after SIGINT: exit status %d, want %d; stderr:\n%s", command, got, code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s did not end within 30s of SIGINT", command)
	}
}

func TestInterruptDetachesBPF(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		command string
		code    int
	}{{"capture", 130}, {"top", 0}} {
		mark := programMark(t)
		interrupt(t, c.command, c.code, "--path", "ringbuf", "--attach", "rawtp")
		if left := programsLeft(t, mark); left != 0 {
			t.Fatalf("%d slab BPF programs the interrupted %s loaded are still loaded", left, c.command)
		}
	}
}

func TestInterruptUnloadsRelay(t *testing.T) {
	if err := relaytrace.Available(""); err != nil {
		t.Skip("relay path unavailable here (the VM tests run it): ", err)
	}
	for _, c := range []struct {
		command string
		code    int
	}{{"capture", 130}, {"top", 0}} {
		interrupt(t, c.command, c.code, "--path", "relay")
		if moduleLoaded(t) {
			t.Fatalf("slabrelay is still loaded after the interrupted %s", c.command)
		}
	}
}
