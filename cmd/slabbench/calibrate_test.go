package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/workloads"
)

func TestCalibrateBadFlags(t *testing.T) {
	oneLineError(t, exec.Command(binary, "calibrate", "--rates", "10000"), "--rates", "two or more")
	oneLineError(t, exec.Command(binary, "calibrate", "--rates", "10000,abc"), "--rates", "100 to 10000000")
	oneLineError(t, exec.Command(binary, "calibrate", "--paths", "relay"), "--paths relay", "ringbuf, perfbuf")
	oneLineError(t, exec.Command(binary, "calibrate", "--duration", "1s"), "--duration", "5s to 1h")
	oneLineError(t, exec.Command(binary, "calibrate", "--wakeup-bytes", "1KiB"), "--wakeup-bytes", "4KiB to 1MiB")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--calibration", "/nonexistent/cal.txt"), "--calibration", "no such file")
	oneLineError(t, exec.Command(binary, "size", "--observe", "2s", "--rate", "1000"), "--observe", "without --rate")
	oneLineError(t, exec.Command(binary, "size", "--observe", "2h"), "--observe", "1s to 1h")
	oneLineError(t, exec.Command(binary, "size", "--observe", "2s", "--path", "relay"), "--path relay", "ringbuf and perfbuf")
	oneLineError(t, exec.Command(binary, "size", "--", "true"), "-- true", "needs --observe")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "extra"), "unexpected argument \"extra\"", "-- CMD ARGS")
}

// TestCalibrateThenSize runs a short calibration of the ring buffer and
// sizes from it: the answer must name the calibration and this machine
// as its source, give at least the backlog it saw, and say it has no
// answer for the path it did not calibrate.
func TestCalibrateThenSize(t *testing.T) {
	testenv.RequireRoot(t)
	file := filepath.Join(t.TempDir(), "calibration.txt")
	out, err := exec.Command(binary, "calibrate", "--paths", "ringbuf", "--rates", "5000,20000", "--duration", "5s", "--out", file).CombinedOutput()
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	js, err := exec.Command(binary, "size", "--rate", "10000", "--calibration", file, "--json").Output()
	if err != nil {
		t.Fatalf("size: %v", err)
	}
	var a sizeAnswer
	if err := json.Unmarshal(js, &a); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if a.Source != "calibration" || a.Machine.File != file || !a.SameMachine {
		t.Errorf("source %q, machine %+v, same %v: want the calibration file, made on this machine", a.Source, a.Machine, a.SameMachine)
	}
	byPath := map[string]sizePath{}
	for _, p := range a.Paths {
		byPath[p.Path] = p
	}
	rb := byPath["ringbuf"]
	if rb.Verdict != "sized" && rb.Verdict != "extrapolated" || rb.Calibration == nil {
		t.Fatalf("ringbuf: %+v, want a size from the calibration", rb)
	}
	if e := rb.Calibration; e.ObservedSeconds < 4 || e.Rate < 5000*0.8 || float64(rb.PerCPUBytes) < e.LargestBytes || len(e.Rates) != 2 {
		t.Errorf("ringbuf: %d bytes per CPU, evidence %+v: want at least the largest backlog seen, in about 5 s at the two rates", rb.PerCPUBytes, *e)
	}
	if pb := byPath["perfbuf"]; pb.Verdict != "no-model" || pb.PerCPUBytes != 0 {
		t.Errorf("perfbuf, not calibrated: %+v, want no-model without a size", pb)
	}
}

// TestSizeObserveThenCapture sizes a ring buffer for the traffic this
// machine makes (a steady openclose load run by the test, plus whatever
// else runs, other tasks' bursts included) with size --observe, for ten
// minutes' captures, then captures the same traffic at that size for a
// tenth of the observed time: nothing may drop. An observation that
// missed the machine's rare bursts (this host's DAMON daemon makes one
// every several seconds; 12 s of observation missed them once in 6 runs)
// sizes for traffic the capture then does not see, so a drop gets one
// more observation and capture; a wrong answer drops in both.
func TestSizeObserveThenCapture(t *testing.T) {
	testenv.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := make(chan error, 1)
	go func() {
		_, err := workloads.Run(ctx, workloads.Config{Name: "openclose", Threads: 2, Duration: 3 * time.Minute, Rate: 4000})
		load <- err
	}()
	for attempt := 1; ; attempt++ {
		flags, out := observeThenCapture(t)
		if out.Verified && out.Dropped == 0 && out.Captured >= 3*4000 {
			break
		}
		if !out.Verified || out.Captured < 3*4000 || attempt == 2 {
			t.Errorf("capture of the same traffic at %s (attempt %d): %+v; want every event, none dropped", flags, attempt, out)
			break
		}
		t.Logf("attempt %d: %s dropped %d: observing again", attempt, flags, out.Dropped)
	}
	cancel()
	<-load
}

// capturedJSON is what observeThenCapture reads of capture --json.
type capturedJSON struct {
	Captured, Dropped uint64
	Verified          bool
}

// observeThenCapture runs size --observe 30s for a ring buffer, then a
// 3 s capture of everything at the flags it gave.
func observeThenCapture(t *testing.T) (string, capturedJSON) {
	t.Helper()
	js, err := exec.Command(binary, "size", "--observe", "30s", "--duration", "10m", "--path", "ringbuf", "--json").Output()
	if err != nil {
		t.Fatalf("size --observe: %v", err)
	}
	var a sizeAnswer
	if err := json.Unmarshal(js, &a); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(a.Paths) != 1 || a.Source != "observed" {
		t.Fatalf("answer %s, want one observed path", js)
	}
	p := a.Paths[0]
	// 4000 ops/s of openclose over 2 CPUs is several thousand events/s per CPU.
	if p.Calibration == nil || p.Calibration.Rate < 4000 || p.Calibration.ObservedSeconds < 29 || p.PerCPUBytes == 0 {
		t.Fatalf("ringbuf: %s; want a size for the observed rate", js)
	}
	t.Logf("observed %.0f events/s per CPU (busiest CPU %.0f), largest backlog %.0f B: %s", p.Calibration.Rate, p.Calibration.BusiestRate, p.Calibration.LargestBytes, p.Flags)
	args := append([]string{"capture", "--workload", "none", "--duration", "3s", "--json"}, strings.Fields(p.Flags)...)
	out, err := exec.Command(binary, args...).Output()
	if err != nil {
		t.Fatalf("capture %v: %v\n%s", args, err, out)
	}
	var res capturedJSON
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return p.Flags, res
}

// TestSizeObserveACommand sizes for a program's own traffic: size
// --observe runs it on each path and watches until it exits, well before
// the --observe limit, and a program too short to sample is refused.
func TestSizeObserveACommand(t *testing.T) {
	testenv.RequireRoot(t)
	// 3,000 opens and closes, then a second of quiet: about 1.5 s.
	script := "i=0; while [ $i -lt 3000 ]; do : < /proc/version; i=$((i+1)); done; sleep 1"
	js, err := exec.Command(binary, "size", "--observe", "20s", "--json", "--", "sh", "-c", script).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w: %s", err, exit.Stderr)
		}
		t.Fatalf("size --observe -- sh: %v\n%s", err, js)
	}
	var a sizeAnswer
	if err := json.Unmarshal(js, &a); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if a.Source != "observed" || !strings.Contains(a.Machine.File, "-- sh -c") || len(a.Paths) != 3 {
		t.Fatalf("answer %s: want relay, ringbuf and perfbuf observed under the command", js)
	}
	for _, p := range a.Paths {
		if p.Path == "relay" {
			continue
		}
		if p.Calibration == nil || p.PerCPUBytes == 0 || p.Calibration.ObservedSeconds < 1 || p.Calibration.ObservedSeconds > 10 {
			t.Errorf("%s: %+v; want a size from the program's own run (about 1.5 s of 20)", p.Path, p)
		}
	}
	// A program shorter than one sample still gets its sample, and an
	// answer that says how far it is extrapolated.
	js, err = exec.Command(binary, "size", "--observe", "5s", "--path", "ringbuf", "--json", "--", "true").Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = fmt.Errorf("%w: %s", err, exit.Stderr)
		}
		t.Fatalf("size --observe -- true: %v\n%s", err, js)
	}
	a = sizeAnswer{}
	if err := json.Unmarshal(js, &a); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if len(a.Paths) != 1 || a.Paths[0].Verdict != "extrapolated" || a.Paths[0].PerCPUBytes == 0 {
		t.Errorf("-- true: %s; want an extrapolated size", js)
	}
}

// TestBacklogOfAProgramTheReaderNeverSaw: a program that ends before the
// reader first looks still leaves a backlog sample with what it wrote (the
// last, partial interval is sampled once the reader has drained it): a
// sample of 0 made size --observe -- true divide by it (margin +Inf) about
// one run in eight, whenever the reader had not looked yet.
func TestBacklogOfAProgramTheReaderNeverSaw(t *testing.T) {
	testenv.RequireRoot(t)
	cfg := samplingConfig(capture.PathRingbuf, samplingWakeupBytes, workloads.Config{Name: "none", Duration: 5 * time.Second})
	cfg.Command = []string{"true"}
	cfg.ConsumerStall = 300 * time.Millisecond // the reader first looks after the program has ended
	s, res, err := sampleBacklog(context.Background(), cfg, "batched", observeInterval, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Captured == 0 || len(s.Backlog) == 0 {
		t.Fatalf("captured %d, samples %v: want the program's records and a sample", res.Captured, s.Backlog)
	}
	if last := s.Backlog[len(s.Backlog)-1]; last <= 0 {
		t.Errorf("samples %v after %d records the reader read only after the program ended: want the last sample to hold their backlog", s.Backlog, res.Captured)
	}
}
