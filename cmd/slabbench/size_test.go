package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/sizing"
)

func runSizeJSON(t *testing.T, args ...string) sizeAnswer {
	t.Helper()
	// The committed results' answer: the host's, even in the VM, and not
	// a calibration this machine may have.
	cmd := exec.Command(binary, append([]string{"size", "--json", "--calibration", "none"}, args...)...)
	cmd.Env = append(cmd.Environ(), "SLABBENCH_ENVIRONMENT=")
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
	sized := 0
	for _, p := range a.Paths {
		if p.Path == "relay" {
			if p.PerCPUBytes != 0 || p.Verdict != "no-model" || !strings.Contains(p.Why, "--env vm-tcg") {
				t.Errorf("relay natively: %+v, want no size and a pointer to the VM's model", p)
			}
			continue
		}
		// Whichever verdict the committed rows give, a withheld size
		// comes with no flags and a reason.
		if p.Verdict == "cannot-keep-up" || p.Verdict == "no-model" {
			if p.PerCPUBytes != 0 || p.SubbufSize != 0 || p.Why == "" {
				t.Errorf("%s: %s with %d per CPU, %d sub-buffer, why %q: want no size and a reason", p.Path, p.Verdict, p.PerCPUBytes, p.SubbufSize, p.Why)
			}
			continue
		}
		sized++
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
		if p.HoldMs <= 0 || p.RiskAt > a.Risk {
			t.Errorf("%s: holds %v ms with a risk of %v (allowed %v): want a hold and the risk within", p.Path, p.HoldMs, p.RiskAt, a.Risk)
		}
		// A size beyond what the held-out open loops checked says so.
		inRange := a.Rate >= p.ValidatedRates[0]/1.1 && a.Rate <= p.ValidatedRates[1]*1.1
		if inRange != (p.Verdict == "sized") || !inRange && (p.Verdict != "extrapolated" || !strings.Contains(p.Why, "outside the rates")) {
			t.Errorf("%s: verdict %s (%s) at %v with validated rates %v", p.Path, p.Verdict, p.Why, a.Rate, p.ValidatedRates)
		}
		if p.Path == "ringbuf" && p.RingbufBytes < 2*p.PerCPUBytes {
			t.Errorf("ring buffer %d for %d per CPU on 2 CPUs", p.RingbufBytes, p.PerCPUBytes)
		}
	}
	t.Logf("%d BPF paths sized at 100k events/s per CPU", sized)
	sm, err := loadModel(nil)
	if err != nil {
		t.Fatal(err)
	}
	// --env picks the VM's results; relay gets a size there only when its
	// open loops kept their schedule, and says why not otherwise.
	if slices.Contains(sm.Environments(), "vm-tcg") {
		vm := runSizeJSON(t, "--rate", "30000", "--path", "relay", "--env", "vm-tcg")
		if p := vm.Paths[0]; !strings.HasPrefix(p.Environment, "vm-tcg") || p.Wakeup != "" || (p.PerCPUBytes == 0) != (p.Verdict == "no-model" || p.Verdict == "cannot-keep-up") || p.Why == "" && p.PerCPUBytes == 0 {
			t.Errorf("relay from the VM's results: %+v", p)
		}
	}
	// More events need more memory, and so does a longer capture, which
	// meets longer absences; a day is beyond what the benchmarks ran.
	lo, hi := runSizeJSON(t, "--rate", "30000", "--path", "ringbuf"), runSizeJSON(t, "--rate", "300000", "--path", "ringbuf")
	if lo.Paths[0].PerCPUBytes == 0 || hi.Paths[0].PerCPUBytes == 0 {
		t.Logf("ringbuf has no size at 30k or 300k in these results (%s, %s): the rate and length checks need one", lo.Paths[0].Verdict, hi.Paths[0].Verdict)
		return
	}
	if lo.Paths[0].NeedBytes >= hi.Paths[0].NeedBytes {
		t.Errorf("ringbuf needs %v at 30k and %v at 300k events/s per CPU", lo.Paths[0].NeedBytes, hi.Paths[0].NeedBytes)
	}
	day := runSizeJSON(t, "--rate", "30000", "--path", "ringbuf", "--duration", "24h")
	if p := day.Paths[0]; p.NeedBytes <= lo.Paths[0].NeedBytes || p.Verdict != "extrapolated" || !strings.Contains(p.Why, "longer than") {
		t.Errorf("a day's capture: %+v; want more than a minute's %v, marked extrapolated", p, lo.Paths[0].NeedBytes)
	}
}

// TestSizeWithholdsASizeTheConsumerCannotUse: where the measured probe +
// consumer CPU per event comes to a CPU or more, size gives a verdict
// and no size or flags, in JSON and in text.
func TestSizeWithholdsASizeTheConsumerCannotUse(t *testing.T) {
	// A billion events/s per CPU: whatever the measured costs per event,
	// no CPU keeps up.
	a := runSizeJSON(t, "--rate", "1e9", "--path", "perfbuf", "--wakeup", "every")
	p := a.Paths[0]
	if p.Verdict == "no-model" {
		t.Skipf("no perfbuf model in these results: %s", p.Why)
	}
	if p.Verdict != "cannot-keep-up" || p.PerCPUBytes != 0 || p.Flags != "" || p.CPUShare < 0.9 || !strings.Contains(p.Why, "of a CPU") {
		t.Errorf("perfbuf woken per record at 1e9: %+v; want cannot-keep-up with its CPU share, and no size", p)
	}
	cmd := exec.Command(binary, "size", "--calibration", "none", "--rate", "1e9", "--path", "perfbuf", "--wakeup", "every")
	cmd.Env = append(cmd.Environ(), "SLABBENCH_ENVIRONMENT=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "--subbuf-size") || !strings.Contains(string(out), "cannot-keep-up") {
		t.Errorf("text output gives flags or no verdict:\n%s", out)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); !strings.Contains(first, a.Machine.CPU) || !strings.Contains(first, a.Machine.Kernel) {
		t.Errorf("first line %q does not name the machine of the model (%+v)", first, a.Machine)
	}
}

// TestWhoseAnswer: the first line of size says whose answer it is, and
// says it is another machine's when the CPU model or count differs.
func TestWhoseAnswer(t *testing.T) {
	from := report.Machine{File: "results/native-x.txt", Environment: "native", CPU: "AMD EPYC", CPUs: 2, Kernel: "6.18", Commit: "abc"}
	here := from
	if s := whoseAnswer(from, here); !strings.HasPrefix(s, "answer measured on this machine") {
		t.Errorf("same machine: %q", s)
	}
	for _, change := range []func(*report.Machine){
		func(m *report.Machine) { m.CPUs = 64 },
		func(m *report.Machine) { m.CPU = "Intel Xeon" },
	} {
		other := here
		change(&other)
		if s := whoseAnswer(from, other); !strings.HasPrefix(s, "ANOTHER MACHINE'S ANSWER") || !strings.Contains(s, "slabbench calibrate") {
			t.Errorf("on %+v: %q; want it called another machine's, and how to measure this one", other, s)
		}
	}
	other := here
	other.Kernel = "6.19"
	if s := whoseAnswer(from, other); !strings.Contains(s, "another kernel") || !strings.Contains(s, "6.19") || !strings.Contains(s, "slabbench calibrate") {
		t.Errorf("another kernel: %q", s)
	}
}

func TestSizeBadFlags(t *testing.T) {
	oneLineError(t, exec.Command(binary, "size"), "--rate", "> 0")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--path", "pipe"), "--path", "relay, ringbuf, perfbuf or all")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--wakeup", "sometimes"), "--wakeup", "every or batched")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--consumer", "elsewhere"), "--consumer", "shared or pinned")
	oneLineError(t, exec.Command(binary, "size", "--rate", "1000", "--env", "mars"), "--env mars", "no sizing model")
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
	h := lossHint(capture.Result{Path: capture.PathRingbuf, Missed: 12, Captured: 1000, DurationNs: 1e9, CPUs: 2}, noCalibration)
	if !strings.Contains(h, "missed 12") || !strings.Contains(h, "not the buffer") || strings.Contains(h, "dropped") {
		t.Errorf("hint %q: want misses explained as not a buffer problem, and no drop advice", h)
	}
	if h := lossHint(capture.Result{Path: capture.PathRingbuf, Captured: 1000, DurationNs: 1e9, CPUs: 2}, noCalibration); h != "" {
		t.Errorf("hint %q for a capture that lost nothing", h)
	}
}

// TestSizeFallsBackToTheRule: where the nearest-clean-size rule scored
// better than the model, size takes the rule's size and prints the rule's
// reasoning, not the model's hold, burst and chance of a drop.
func TestSizeFallsBackToTheRule(t *testing.T) {
	k := sizing.Key{Env: "native test", Path: "ringbuf", Wakeup: "every", Consumer: "shared"}
	row := func(rate float64, perCPU int, clean bool) sizing.Observation {
		return sizing.Observation{Key: k, Workload: "openclose", Rate: fmt.Sprint(rate), PerCPURate: rate, PerCPUBytes: perCPU, NoDrops: clean}
	}
	sm := report.SizingModel{Set: sizing.Set{Fitted: []sizing.Observation{
		row(10000, 64<<10, false), row(10000, 128<<10, true), row(10000, 256<<10, true), row(50000, 256<<10, true),
	}}}
	sp := sizePath{Rule: ruleModel, PerCPUBytes: 1 << 20, HoldMs: 12, BurstBytes: 300e3, RiskAt: 0.004,
		Scores: &sizing.Scores{Rows: 20, Model: 0.25, BaseRate: 0.2, NearestClean: 0.1}}
	useBaseline(&sp, sm, sizing.Model{Key: k}, 15000)
	// 128 KiB clean at 10k, the nearest fitted rate; 15k needs 1.5 times it.
	if sp.Rule != ruleNearestClean || sp.NeedBytes != 192<<10 || sp.PerCPUBytes != 256<<10 {
		t.Fatalf("rule %q, need %.0f B, size %d B: want the rule's 192 KiB need rounded up to 256 KiB", sp.Rule, sp.NeedBytes, sp.PerCPUBytes)
	}
	var out strings.Builder
	printSized(&out, sp)
	if !strings.Contains(out.String(), "the rule: 128KiB per CPU dropped nothing at 10k events/s per CPU") ||
		strings.Contains(out.String(), "absence") || strings.Contains(out.String(), "chance") {
		t.Errorf("printed:\n%s\nwant the rule's reasoning and none of the model's", out.String())
	}

	// Where the model scored better, it keeps its size and reasoning.
	sp = sizePath{Rule: ruleModel, PerCPUBytes: 1 << 20, HoldMs: 12, Scores: &sizing.Scores{Rows: 20, Model: 0.1, BaseRate: 0.2, NearestClean: 0.25}}
	useBaseline(&sp, sm, sizing.Model{Key: k}, 15000)
	if sp.Rule != ruleModel || sp.PerCPUBytes != 1<<20 || sp.HoldMs != 12 {
		t.Errorf("model scored better, yet %+v", sp)
	}
}

// TestDropHintFromTheCalibration: with this machine's calibration, a
// capture that dropped is told the calibrated size for its rate, or, when
// it already had that, that a burst came the calibration did not see.
func TestDropHintFromTheCalibration(t *testing.T) {
	f, err := os.Open("../../sizing/testdata/calibration.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cal, err := sizing.ReadCalibration(f, "calibration.txt")
	if err != nil {
		t.Fatal(err)
	}
	// 20,000 events in 1 s from 2 threads on 2 CPUs: 10k per CPU, where
	// the calibration saw backlogs up to 20,000 bytes.
	r := capture.Result{Path: capture.PathRingbuf, WakeupBytes: 16 << 10, ConsumerCPU: -1, Threads: 2, CPUs: 2,
		Captured: 19000, Lost: 1000, Dropped: 1000, DurationNs: 1e9, SubbufSize: 4 << 10, NumSubbufs: 2}
	want := sizeCalibrated(cal, "ringbuf", "batched", "shared", perCPURate(r), 1)
	h := lossHint(r, calibrated(&cal))
	t.Logf("hint: %s", h)
	if want.PerCPUBytes <= 8<<10 || !strings.Contains(h, "this machine's calibration (calibration.txt)") ||
		!strings.Contains(h, "try "+bufferFlags(want.SubbufSize, want.WakeupBytes)) {
		t.Errorf("hint %q: want the calibration's %d B per CPU and its flags", h, want.PerCPUBytes)
	}
	r.SubbufSize, r.NumSubbufs = 1<<20, 4
	if h := lossHint(r, calibrated(&cal)); !strings.Contains(h, "a burst came that the calibration did not see") || strings.Contains(h, "try --subbuf-size") {
		t.Errorf("hint %q: a capture that had the calibrated size should hear that the calibration missed a burst", h)
	}
	// No series for a reader woken per record: the model answers.
	r.WakeupBytes = 0
	if h := lossHint(r, calibrated(&cal)); strings.Contains(h, "calibration") {
		t.Errorf("hint %q: the calibration has no series for wakeup every", h)
	}
}

// noCalibration and calibrated stand for this machine's calibration in
// the hint tests.
func noCalibration() *sizing.Calibration { return nil }

func calibrated(c *sizing.Calibration) func() *sizing.Calibration {
	return func() *sizing.Calibration { return c }
}

// TestPollingCaptureHint: a polling reader's drop hint sizes one interval's
// worth of events (rate x interval x record bytes), not a woken reader's.
func TestPollingCaptureHint(t *testing.T) {
	testenv.RequireRoot(t)
	out, err := exec.Command(binary, "capture", "--path", "perfbuf", "--workload", "openclose", "--ops", "20000", "--threads", "2",
		"--subbuf-size", "4KiB", "--subbufs", "2", "--poll", "20ms", "--json").Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r struct {
		Dropped    uint64 `json:"dropped"`
		Lost       uint64 `json:"lost"`
		Captured   uint64 `json:"captured"`
		DurationNs int64  `json:"duration_ns"`
		PollNs     int64  `json:"poll_ns"`
		Hint       string `json:"hint"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if r.PollNs != 20e6 {
		t.Errorf("poll_ns %d, want 20000000", r.PollNs)
	}
	if r.Dropped == 0 {
		t.Fatalf("nothing dropped: 8 KiB per CPU read every 20 ms cannot hold a closed loop\n%s", out)
	}
	rate := float64(r.Captured+r.Lost) / (float64(r.DurationNs) / 1e9) / 2 // 2 threads, one per CPU
	var kib float64
	if _, err := fmt.Sscanf(r.Hint[strings.Index(r.Hint, "finds about ")+len("finds about "):], "%f KiB", &kib); err != nil {
		t.Fatalf("hint %q: want the KiB one interval leaves waiting (%v)", r.Hint, err)
	}
	if want := rate * 0.02 * float64(event.RecordBytesIn("perfbuf")) / 1024; math.Abs(kib-want) > 0.05*want+1 {
		t.Errorf("hint says %.0f KiB per CPU wait per look; rate %.0f/s per CPU x 20 ms x record = %.0f KiB", kib, rate, want)
	}
	if !strings.Contains(r.Hint, "polling every 20ms") || !strings.Contains(r.Hint, "--poll") {
		t.Errorf("hint %q: want the polling interval named and --poll offered", r.Hint)
	}
}

// TestRoughGuideOnlyForTheModelsSize: the line that calls the model's
// size a rough guide (its chances no better than the base rate) is
// printed only under a size the model chose, never under one the
// nearest-clean rule replaced it with.
func TestRoughGuideOnlyForTheModelsSize(t *testing.T) {
	cmd := exec.Command(binary, "size", "--calibration", "none", "--env", "vm-tcg", "--rate", "2000")
	cmd.Env = append(cmd.Environ(), "SLABBENCH_ENVIRONMENT=")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("no VM answer in the committed results: %v\n%s", err, out)
	}
	blocks := strings.Split(string(out), "\n\n")
	ruled := 0
	for _, b := range blocks {
		if !strings.Contains(b, "the size is the nearest-clean-size rule's") {
			continue
		}
		ruled++
		if strings.Contains(b, "take its size as a rough guide") {
			t.Errorf("a size the rule chose is called the model's rough guide:\n%s", b)
		}
	}
	if ruled == 0 {
		t.Skipf("the model's sizes stand for every path in the VM's committed results: nothing to check\n%s", out)
	}
}

// TestSizeAnswersAsTheReport: slabbench size and the report's answer
// table decide alike (report.SizingModel.Decision): the same memory per
// CPU for every path it sizes, in every environment of the committed
// results, and the nearest-clean rule's where, and only where, size used
// it, with its cost per event from the same row.
func TestSizeAnswersAsTheReport(t *testing.T) {
	sm, err := loadModel(nil)
	if err != nil {
		t.Fatal(err)
	}
	compared, ruled := 0, 0
	for _, env := range sm.Environments() {
		for _, rate := range []float64{10e3, 100e3} {
			a := runSizeJSON(t, "--rate", fmt.Sprint(rate), "--path", "all", "--env", env)
			for _, p := range a.Paths {
				if p.PerCPUBytes == 0 {
					continue
				}
				m, ok := sm.ModelFor(env, p.Path, p.Wakeup, p.Consumer)
				if !ok {
					t.Errorf("%s %s at %v: sized, but the report has no model for it", env, p.Path, rate)
					continue
				}
				d, rule := sm.Decision(m, rate, a.Seconds)
				compared++
				if rule {
					ruled++
				}
				if d.Rec.PerCPUBytes != p.PerCPUBytes || rule != (p.Rule == ruleNearestClean) {
					t.Errorf("%s %s at %v: size says %d per CPU (rule %q), the report's decision %d (rule %v)",
						p.Environment, p.Path, rate, p.PerCPUBytes, p.Rule, d.Rec.PerCPUBytes, rule)
				}
				if p.CostFrom != d.Cost.From {
					t.Errorf("%s %s at %v: size's cost from %q, the report's from %q", p.Environment, p.Path, rate, p.CostFrom, d.Cost.From)
				}
			}
		}
	}
	t.Logf("%d sizes compared, %d of them the nearest-clean rule's", compared, ruled)
	if compared == 0 {
		t.Fatal("no path sized in any environment of the committed results")
	}
}
