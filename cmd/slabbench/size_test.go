package main

import (
	"encoding/json"
	"math/bits"
	"os/exec"
	"strings"
	"testing"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/testenv"
)

func runSizeJSON(t *testing.T, args ...string) sizeAnswer {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"size", "--json"}, args...)...)
	cmd.Env = append(cmd.Environ(), "SLABBENCH_ENVIRONMENT=") // the host's answer, even in the VM
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("slabbench size %v: %v\n%s", args, err, out)
	}
	var a sizeAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return a
}

// TestSizeOnCommittedResults runs size on the results built into the
// binary: every BPF path gets flags that give the memory it names.
func TestSizeOnCommittedResults(t *testing.T) {
	a := runSizeJSON(t, "--rate", "100000", "--path", "all")
	if a.Rate != 100000 || len(a.Paths) != 3 || a.Seconds != 60 || a.Risk <= 0 {
		t.Fatalf("answer %+v, want rate 100000, a 60 s capture, a risk, and relay, ringbuf, perfbuf", a)
	}
	for _, p := range a.Paths {
		if p.Path == "relay" {
			if p.PerCPUBytes != 0 || !strings.Contains(p.Note, "--env vm-tcg") {
				t.Errorf("relay natively: %+v, want no size and a pointer to the VM's model", p)
			}
			continue
		}
		if p.PerCPUBytes < 8<<10 || bits.OnesCount(uint(p.PerCPUBytes)) != 1 || p.SubbufSize*p.Subbufs != p.PerCPUBytes {
			t.Errorf("%s: %d per CPU as %d x %d, want a power of two of at least 8KiB, subbufs x subbuf-size", p.Path, p.PerCPUBytes, p.Subbufs, p.SubbufSize)
		}
		if p.Wakeup != "batched" || p.WakeupBytes != p.SubbufSize {
			t.Errorf("%s: wakeup %q, %d bytes; the default batched reader wakes per sub-buffer (%d)", p.Path, p.Wakeup, p.WakeupBytes, p.SubbufSize)
		}
		if !strings.HasPrefix(p.Environment, "native ") || p.ValidatedRates[0] <= 0 || p.ValidatedRates[0] >= p.ValidatedRates[1] {
			t.Errorf("%s: environment %q, validated %v", p.Path, p.Environment, p.ValidatedRates)
		}
		if float64(p.PerCPUBytes) < p.NeedBytes || p.ProbeNs == nil {
			t.Errorf("%s: %d per CPU below the model's %v, or no probe cost", p.Path, p.PerCPUBytes, p.NeedBytes)
		}
		if p.HoldMs <= 0 || p.RiskAt > a.Risk || p.Extrapolated {
			t.Errorf("%s: holds %v ms with a risk of %v (allowed %v), extrapolated %v: want a hold, the risk within, and a minute within the fitted runs",
				p.Path, p.HoldMs, p.RiskAt, a.Risk, p.Extrapolated)
		}
		if p.Path == "ringbuf" && p.RingbufBytes < 2*p.PerCPUBytes {
			t.Errorf("ring buffer %d for %d per CPU on 2 CPUs", p.RingbufBytes, p.PerCPUBytes)
		}
	}
	vm := runSizeJSON(t, "--rate", "30000", "--path", "relay", "--env", "vm-tcg")
	if p := vm.Paths[0]; p.PerCPUBytes == 0 || !strings.HasPrefix(p.Environment, "vm-tcg ") || p.Wakeup != "" {
		t.Errorf("relay from the VM's results: %+v", p)
	}
	// More events need more memory, and so does a longer capture, which
	// meets longer absences; a day is beyond what the benchmarks ran.
	lo, hi := runSizeJSON(t, "--rate", "30000", "--path", "ringbuf"), runSizeJSON(t, "--rate", "300000", "--path", "ringbuf")
	if lo.Paths[0].NeedBytes >= hi.Paths[0].NeedBytes {
		t.Errorf("ringbuf needs %v at 30k and %v at 300k events/s per CPU", lo.Paths[0].NeedBytes, hi.Paths[0].NeedBytes)
	}
	day := runSizeJSON(t, "--rate", "30000", "--path", "ringbuf", "--duration", "24h")
	if p := day.Paths[0]; p.NeedBytes <= lo.Paths[0].NeedBytes || !p.Extrapolated || !strings.Contains(p.Note, "extrapolation") {
		t.Errorf("a day's capture: %+v; want more than a minute's %v, marked extrapolated", p, lo.Paths[0].NeedBytes)
	}
}

func TestSizeBadFlags(t *testing.T) {
	oneLineError(t, exec.Command(binary, "size"), "--rate", "> 0")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--path", "pipe"), "--path", "relay, ringbuf, perfbuf or all")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--wakeup", "sometimes"), "--wakeup", "every or batched")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--consumer", "elsewhere"), "--consumer", "shared or pinned")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--env", "mars"), "--env mars", "native")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--duration", "10ms"), "--duration", "1s to 720h")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--results", "/nonexistent.txt"), "--results", "/nonexistent.txt")
}

// TestCaptureHintOnDrops provokes drops (a 4 KiB ring read 300 ms late)
// and expects the hint to name the flags to change.
func TestCaptureHintOnDrops(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := exec.Command(binary, "capture", "--path", "ringbuf", "--workload", "openclose", "--ops", "20000", "--threads", "2",
		"--subbuf-size", "2KiB", "--subbufs", "2", "--consumer-stall", "300ms", "--json").Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r struct {
		Dropped uint64 `json:"dropped"`
		Hint    string `json:"hint"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if r.Dropped == 0 {
		t.Fatalf("nothing dropped: the stall should have filled the buffer\n%s", out)
	}
	if !strings.HasPrefix(r.Hint, "dropped ") || !strings.Contains(r.Hint, "events/s per CPU") ||
		!strings.Contains(r.Hint, "--subbuf-size") && !strings.Contains(r.Hint, "--wakeup-bytes") {
		t.Errorf("hint %q: want the drop rate and the flags to change", r.Hint)
	}
}

func TestHintOnMissesIsNotTheBuffer(t *testing.T) {
	h := lossHint(capture.Result{Path: capture.PathRingbuf, Missed: 12, Captured: 1000, DurationNs: 1e9, CPUs: 2})
	if !strings.Contains(h, "missed 12") || !strings.Contains(h, "not the buffer") || strings.Contains(h, "dropped") {
		t.Errorf("hint %q: want misses explained as not a buffer problem, and no drop advice", h)
	}
	if h := lossHint(capture.Result{Path: capture.PathRingbuf, Captured: 1000, DurationNs: 1e9, CPUs: 2}); h != "" {
		t.Errorf("hint %q for a capture that lost nothing", h)
	}
}
