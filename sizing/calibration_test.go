package sizing

import (
	"math"
	"os"
	"strings"
	"testing"
)

func readTestCalibration(t *testing.T) Calibration {
	t.Helper()
	f, err := os.Open("testdata/calibration.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ReadCalibration(f, "testdata/calibration.txt")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadCalibration(t *testing.T) {
	c := readTestCalibration(t)
	if c.Config["cpu"] != "Test CPU @ 1GHz" || c.Config["cpus"] != "2" || c.Config["kernel"] != "6.18.0-test" {
		t.Errorf("config %v, want the file's machine lines", c.Config)
	}
	if len(c.Series) != 3 {
		t.Fatalf("%d series, want 3", len(c.Series))
	}
	rb := c.SeriesFor("ringbuf", "batched")
	if len(rb) != 2 || rb[0].Rate != 10000 || rb[1].Rate != 100000 {
		t.Fatalf("ringbuf batched series %+v, want rates 10000 and 100000 in order", rb)
	}
	if s := rb[0]; len(s.Backlog) != 20 || s.Interval != 0.1 || s.WakeupBytes != 16384 || s.BusiestRate != 11000 || s.Seconds() != 2 || s.Largest() != 20000 {
		t.Errorf("series %+v: want 20 samples of 100ms up to 20000 bytes, wakeup 16384, busiest 11000", s)
	}
	if s := c.SeriesFor("perfbuf", "every"); len(s) != 1 || s[0].Interval != 0.25 || s[0].WakeupBytes != 0 {
		t.Errorf("perfbuf every series %+v, want one of 250ms samples", s)
	}
}

func TestReadCalibrationRefusesOtherFiles(t *testing.T) {
	_, err := ReadCalibration(strings.NewReader("cpus: 2\nBenchmarkCapture/path=ringbuf 1 5 ns/op\n"), "x.txt")
	if err == nil || !strings.Contains(err.Error(), "calibrate") {
		t.Errorf("err = %v, want one saying it is not a calibration file and what writes one", err)
	}
	_, err = ReadCalibration(strings.NewReader("BenchmarkCalibrate/path=ringbuf/wakeup=batched/interval=100ms 1 5 backlog-B\n"), "x.txt")
	if err == nil || !strings.Contains(err.Error(), "events/s/cpu") {
		t.Errorf("err = %v, want one naming the missing rate", err)
	}
}

func TestNeedObservedAndTail(t *testing.T) {
	s := readTestCalibration(t).SeriesFor("ringbuf", "batched")[0]
	// One interval at a 50% risk: the backlog half the samples pass.
	if need, ext := s.Need(0.1, 0.5); need != 11000 || ext {
		t.Errorf("Need(0.1s, 50%%) = %v, %v; want the observed 11000, not extrapolated", need, ext)
	}
	// A minute at 1%: far beyond 20 samples. The tail stands on the 5
	// largest (15,000 the threshold, excesses summing to 15,000): the
	// predictive tail's 15000 + 15000 ((5 / (20 q))^(1/5) - 1), q = 1 -
	// 0.99^(1/600); a point estimate of the scale would say 43,832.
	need, ext := s.Need(60, 0.01)
	if !ext || math.Abs(need-102535.5) > 1 {
		t.Errorf("Need(60s, 1%%) = %v, %v; want the tail's 102535, extrapolated", need, ext)
	}
	if longer, _ := s.Need(600, 0.01); longer <= need {
		t.Errorf("Need(600s) = %v, not above Need(60s) = %v: a longer capture meets larger backlogs", longer, need)
	}
}

func TestAnswerInterpolatesAndSays(t *testing.T) {
	c := readTestCalibration(t)
	rb := c.SeriesFor("ringbuf", "batched")
	low, _ := rb[0].Need(60, Risk)
	high, _ := rb[1].Need(60, Risk)
	a, ok := c.Answer("ringbuf", "batched", 60000, 60)
	if !ok {
		t.Fatal("no answer for ringbuf batched")
	}
	if want := low + (high-low)*5/9; math.Abs(a.Need-want) > 1e-6*want {
		t.Errorf("Need at 60000 = %v, want %v, 5/9 of the way from %v to %v", a.Need, want, low, high)
	}
	if !strings.Contains(a.Extrapolated, "fitted tail") {
		t.Errorf("Extrapolated = %q, want it to say a fitted tail sets a 1%% risk over a minute from 2 s of samples", a.Extrapolated)
	}
	if a.PerCPUBytes < int(a.Need) || a.PerCPUBytes >= 2*int(a.Need) || a.PerCPUBytes&(a.PerCPUBytes-1) != 0 {
		t.Errorf("PerCPUBytes %d for need %.0f: want the next power of two", a.PerCPUBytes, a.Need)
	}
	if a.SubbufBytes != a.PerCPUBytes/Subbufs || a.WakeupBytes != min(16384, a.SubbufBytes) {
		t.Errorf("sub-buffer %d, wakeup %d for %d per CPU: want a quarter, and the calibrated 16384 at most", a.SubbufBytes, a.WakeupBytes, a.PerCPUBytes)
	}
	if a.Nearest.Rate != 100000 {
		t.Errorf("nearest series at %v, want 100000", a.Nearest.Rate)
	}
	out, _ := c.Answer("ringbuf", "batched", 400000, 60)
	if !strings.Contains(out.Extrapolated, "outside the calibrated 10000-100000") || out.Need <= high {
		t.Errorf("at 400000: need %v, extrapolated %q; want more than at 100000 and a rate outside the calibrated ones", out.Need, out.Extrapolated)
	}
	below, _ := c.Answer("ringbuf", "batched", 1000, 60)
	if below.Need <= 0 || below.Need > low {
		t.Errorf("at 1000: need %v, want above 0 and at most the lowest rate's %v", below.Need, low)
	}
	if _, ok := c.Answer("perfbuf", "batched", 1000, 60); ok {
		t.Error("an answer for perfbuf batched, which was not calibrated")
	}
}

func TestScoresAgainstBaselines(t *testing.T) {
	k := Key{Env: "native 6.18", Path: "ringbuf", Wakeup: "batched", Consumer: "shared"}
	row := func(rate string, perCPURate float64, bytes int, noDrops bool) Observation {
		return Observation{Key: k, Workload: "openclose", Rate: rate, PerCPURate: perCPURate, PerCPUBytes: bytes, NoDrops: noDrops}
	}
	fitted := []Observation{row("1000", 1000, 8<<10, false), row("1000", 1000, 16<<10, true), row("1000", 1000, 32<<10, true)}
	// The nearest clean size at 1000 is 16 KiB: at twice the rate, 32 KiB.
	v := Validation{Checks: []Check{
		{Observation: row("2000", 2000, 40<<10, true), HasModel: true, DropChance: 0.1},
		{Observation: row("2000", 2000, 16<<10, false), HasModel: true, DropChance: 0.8},
		{Observation: row("max", 5000, 16<<10, false), HasModel: true, DropChance: 0.5}, // a closed loop: not scored
		{Observation: row("2000", 2000, 64<<10, true)},                                  // no model: not scored
	}}
	s := v.Scores(fitted)
	want := Scores{Rows: 2, Model: (0.1*0.1 + 0.2*0.2) / 2, BaseRate: (1.0/9 + 4.0/9) / 2, NearestClean: 0}
	if s.Rows != want.Rows || math.Abs(s.Model-want.Model) > 1e-12 || math.Abs(s.BaseRate-want.BaseRate) > 1e-12 || s.NearestClean != 0 {
		t.Errorf("Scores = %+v, want %+v", s, want)
	}
	if s.Beats() {
		t.Error("Beats() with the nearest-clean rule perfect")
	}
}

// TestHalfTheAnswerHasItsRisk: the answer states the chance of a drop at
// half its memory, the inverse of the need: what the need gives for that
// chance fits in half the memory, and a need for a chance a tenth as
// large does not.
func TestHalfTheAnswerHasItsRisk(t *testing.T) {
	c := readTestCalibration(t)
	const rate, seconds = 50000, 60
	a, ok := c.Answer("ringbuf", "batched", rate, seconds)
	if !ok {
		t.Fatal("no ringbuf batched answer")
	}
	if a.HalfBytes != a.PerCPUBytes/2 || a.HalfRisk <= Risk || a.HalfRisk > 1 {
		t.Fatalf("half %d bytes at a %v chance, want %d at a chance above the answer's %v", a.HalfBytes, a.HalfRisk, a.PerCPUBytes/2, Risk)
	}
	series := c.SeriesFor("ringbuf", "batched")
	if need, _, _ := needAtRisk(series, rate, seconds, a.HalfRisk); need > float64(a.HalfBytes) {
		t.Errorf("at the stated %v chance the need is %v bytes, more than half the answer (%d)", a.HalfRisk, need, a.HalfBytes)
	}
	if need, _, _ := needAtRisk(series, rate, seconds, a.HalfRisk/10); a.HalfRisk < 0.999 && need <= float64(a.HalfBytes) {
		t.Errorf("a tenth of the stated %v chance needs %v bytes, which half the answer (%d) holds: the stated chance is not the least", a.HalfRisk, need, a.HalfBytes)
	}
}
