// Package sizing is the buffer sizing model: the per-CPU memory a capture
// path needs to lose nothing at a given event rate over a capture of a
// given length, fitted from benchmark results and checked on results it
// was not fitted on (with proper scores beside two baselines), or taken
// from the backlogs `slabbench calibrate` observed on the machine itself
// (Calibration).
//
// The buffer must hold the readable backlog y a capture meets, plus what
// is written but not readable yet:
//
//	M ≥ y            (a reader woken per record)
//	M ≥ y·n/(n−1)    (a batched reader or relay: one of n sub-buffers is
//	                  being filled before the reader sees it)
//
// Two things push y up, independently: the consumer's absences (Tail: an
// absence of x seconds leaves r·s·x bytes, r events/s per CPU and s the
// bytes one record takes in the path's buffer; r·s·x/(1 − ρ) in the form
// with the consumer's load, ρ the share of a CPU the consumer needs at r,
// which ModelForm leaves out) and other tasks' bursts of slab events on
// one CPU (Burst: up to K events, whatever r). y is the backlog a capture of d
// seconds passes with a chance of only Risk.
package sizing

import (
	"fmt"
	"math"
	"slices"
)

// Key is what a model is fitted for: where it was measured, the path,
// its reader wakeup and where the consumer ran.
type Key struct {
	Env      string // environment and kernel: "native 6.18.44-fc-v657"
	Path     string // relay, ringbuf, perfbuf
	Wakeup   string // every, batched; "" for relay
	Consumer string // shared, pinned
}

func (k Key) String() string {
	s := k.Path
	if k.Wakeup != "" {
		s += " wakeup=" + k.Wakeup
	}
	return s + ", consumer " + k.Consumer + ", " + k.Env
}

// Batched says whether one sub-buffer is written before the reader can
// see it: relay, or a reader woken once a sub-buffer of bytes is pending.
func (k Key) Batched() bool { return k.Path == "relay" || k.Wakeup == "batched" }

// Observation is one benchmark row: a buffer at a rate, and whether it
// dropped anything (buffer full) in any of its runs.
type Observation struct {
	Key
	Workload string
	Rate     string // the row's rate key: "max" or ops/s
	// HeldOut: the benchmark plan declared the row held out of the fit
	// before it was measured (plan.Plan.HeldOut).
	HeldOut bool
	// PerCPURate is events/s per CPU: the row's events over its time,
	// divided among the CPUs the workload ran on.
	PerCPURate  float64
	PerCPUBytes int
	Subbufs     int
	RecordBytes int
	CPUs        int // of the machine it ran on
	Runs        int
	// NoDrops: the buffer was never full (dropped-% 0) in any run. Missed
	// events (probe not run) are not the buffer's and do not count.
	// SomeRunsKeptUp: some runs dropped and some did not, so a rare stall
	// outlasted the buffer, not a consumer too slow for the rate.
	NoDrops, SomeRunsKeptUp bool
	LostPct                 float64 // median
	// MaxBacklog is the most written-but-unread bytes of one CPU's
	// share of the buffer over the runs (0: not reported).
	MaxBacklog float64
	// PerRun is each run on its own (empty: the runs were not reported
	// one by one, and the row counts as one run with MaxBacklog).
	PerRun []Run
	// Costs per event, medians (NaN when the row has none).
	ProbeNs, ConsumerNs, OverheadNs float64
	Source                          string // where it came from: file and row name
}

// Run is one run of a row.
type Run struct {
	Dropped    bool    // the buffer was full at least once
	Backlog    float64 // the most written-but-unread bytes of one CPU's share
	PerCPURate float64 // events/s per CPU
	Seconds    float64 // how long it ran (0: not reported)
}

// PerCPURate spreads events/s over the CPUs one buffer of path takes them
// from: the producers' CPUs (one producer per CPU, at most cpus), or every
// CPU for the ring buffer, which all CPUs share. producers <= 0 means
// every CPU.
func PerCPURate(path string, eventsPerSec float64, producers, cpus int) float64 {
	if path == "ringbuf" || producers <= 0 || producers > cpus {
		producers = cpus
	}
	if producers <= 0 {
		return 0
	}
	return eventsPerSec / float64(producers)
}

// runs are the row's runs: PerRun, or one run made of the row's own
// figures where the runs were not reported one by one.
func (o Observation) runs() []Run {
	if len(o.PerRun) == 0 {
		return []Run{{Dropped: !o.NoDrops, Backlog: o.MaxBacklog, PerCPURate: o.PerCPURate}}
	}
	return o.PerRun
}

// runRate is a run's events/s per CPU, or the row's where the run has none.
func (o Observation) runRate(r Run) float64 {
	if r.PerCPURate > 0 {
		return r.PerCPURate
	}
	return o.PerCPURate
}

// DroppedShare is the share of the row's runs that dropped.
func (o Observation) DroppedShare() float64 {
	runs := o.runs()
	n := 0
	for _, r := range runs {
		n += b2i(r.Dropped)
	}
	return float64(n) / float64(len(runs))
}

// Seconds is how long the row's runs lasted together.
func (o Observation) Seconds() float64 {
	total := 0.0
	for _, r := range o.runs() {
		total += r.length()
	}
	return total
}

// length is how long the run lasted: a run without a duration counts as
// 1 s, the benchmarks' -benchtime.
func (r Run) length() float64 {
	if r.Seconds > 0 {
		return r.Seconds
	}
	return 1
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Risk is the chance of a drop the model sizes a capture for: one in a
// hundred, because the fitted tail is thinner than long captures show
// (docs/sizing.md).
const Risk = 0.01

// RowRisk is where the model calls a benchmark row lossy: more likely than
// not to drop in one of its runs.
const RowRisk = 0.5

// DefaultSeconds is the capture length a recommendation is for unless
// asked otherwise.
const DefaultSeconds = 60

// Model is the fitted rule for one key.
type Model struct {
	Key
	// Form is the terms the model leaves out (FitForm): none but to
	// score the model without them.
	Form        Form
	RecordBytes int
	// Tail is fitted on the key's runs, GroupTail on every run of its
	// group (Model.group); the model takes whichever has the longer
	// absences at a length (a rare long absence is the consumer's,
	// whatever path it reads, and one path's runs may not show it).
	Tail, GroupTail Tail
	// Burst is fitted on every run of the environment, beside each key's
	// tail: other tasks' floods of slab events are the machine's, not the
	// path's. PerEvent is the bytes one of their events adds to a CPU's
	// share of this path's buffer; BurstSeconds is how long the
	// environment's runs lasted together.
	Burst        Burst
	PerEvent     float64
	BurstSeconds float64
	// ConsumerNs is the consumer's CPU per event, the median of the
	// fitted rows' (NaN: none reported).
	ConsumerNs float64
	// Rates is the range of per-CPU rates of the fitted rows with a run
	// that kept up; beyond Rates[1] the fit has no such row.
	Rates [2]float64
	// Fitted counts the rows fitted, NoDrops those that dropped in no
	// run; RunsFitted the runs, Censored those of them that dropped;
	// Seconds their total length and LongestRun the longest;
	// GroupSeconds the total length of the group's runs.
	Fitted, NoDrops      int
	RunsFitted, Censored int
	Seconds, LongestRun  float64
	GroupSeconds         float64
	// Unsustained is the lowest per-CPU rate of a fitted rate at which
	// every run of every size dropped (0: none), and UnsustainedBytes the
	// largest size tested there: the consumer did not keep up at all.
	Unsustained      float64
	UnsustainedBytes int
	// MissedTarget is the lowest per-CPU target rate at which an open
	// loop of the key missed its target in every run (0: none), and
	// MissedTargetRow that row: the consumer could not keep up there.
	MissedTarget    float64
	MissedTargetRow string
}

// Hold is the absence of the consumer a capture of d seconds outlasts
// but for a chance of risk, bursts aside, for a consumer with CPU to
// spare (the buffer holds r·s·H: absenceBytesPerSec).
func (m Model) Hold(d, risk float64) float64 {
	return max(m.Tail.Hold(d, risk), m.GroupTail.Hold(d, risk))
}

// BurstBytes is the burst a capture of d seconds meets but for a chance
// of risk, in bytes of a CPU's share of the buffer (0: none that large).
func (m Model) BurstBytes(d, risk float64) float64 {
	e := m.Burst.Hold(d, risk)
	if e <= BurstThreshold {
		return 0
	}
	return e * m.PerEvent
}

// absences is λ(x) of whichever of the key's and its group's tails has
// the longer absences at x, as Hold takes the longer of their holds.
func (m Model) absences(x float64) float64 { return max(m.Tail.Exceed(x), m.GroupTail.Exceed(x)) }

// Exceed is how often, per second, a CPU's readable backlog passes y
// bytes at rate events/s per CPU: the consumer away longer than y lasts,
// or a burst larger than y holds.
func (m Model) Exceed(y, rate float64) float64 {
	absent, burst := m.exceedParts(y, rate)
	return absent + burst
}

// exceedParts is Exceed split by cause: the consumer's absences and the
// host's bursts.
func (m Model) exceedParts(y, rate float64) (absent, burst float64) {
	bps := rate * float64(m.RecordBytes)
	return m.absences(y / m.absenceBytesPerSec(rate)), m.Burst.Exceed(m.Burst.events(y, bps, m.PerEvent))
}

// absenceBytesPerSec is what a second of the consumer's absence leaves in
// the buffer at rate: r·s; over 1 − ρ, in a form with the consumer's load,
// for a consumer that needs a share ρ of a CPU (a busy consumer drains a
// backlog slowly, as a queue's busy period grows as 1/(1 − ρ)).
func (m Model) absenceBytesPerSec(rate float64) float64 {
	return absenceBytesPerSec(rate, m.RecordBytes, m.ConsumerNs, m.Form)
}

// absenceBytesPerSec is r·s/(1 − ρ) at rate for records of recordBytes
// and a consumer of consumerNs per event; r·s where f leaves the load out.
// The fit's runs and the model compute it the same way.
func absenceBytesPerSec(rate float64, recordBytes int, consumerNs float64, f Form) float64 {
	bps := rate * float64(recordBytes)
	if f.NoLoad {
		return bps
	}
	return bps / (1 - load(rate, consumerNs))
}

// readable is the backlog a capture of d seconds at rate keeps under but
// for a chance of risk: d·Exceed(y) = −ln(1 − risk), and at least the
// Threshold's worth.
func (m Model) readable(rate, d, risk float64) float64 {
	floor := rate * float64(m.RecordBytes) * Threshold
	target := -math.Log1p(-risk) / d
	if m.Exceed(floor, rate) <= target {
		return floor
	}
	return floor * (1 + solve(func(x float64) bool { return m.Exceed(floor*(1+x), rate) > target }))
}

// Load is ρ, the share of a CPU the consumer needs at rate (0 where its
// cost is unknown), at most MaxLoad.
func (m Model) Load(rate float64) float64 { return load(rate, m.ConsumerNs) }

// CPUShare is that share uncapped: above MaxLoad the model gives no size.
func (m Model) CPUShare(rate float64) float64 { return cpuShare(rate, m.ConsumerNs) }

// FromBurst says whether bursts, rather than the consumer's absences,
// set the need at rate for a capture of d seconds.
func (m Model) FromBurst(rate, d float64) bool {
	absent, burst := m.exceedParts(m.readable(rate, d, Risk), rate)
	return burst > absent
}

// FromGroup says whether the group's tail sets Hold at d seconds.
func (m Model) FromGroup(d float64) bool {
	return m.GroupTail.Hold(d, Risk) > m.Tail.Hold(d, Risk)
}

// Exposure is how long the runs of what sets the need at rate for d
// seconds (the environment's bursts, the key's tail or its group's)
// lasted together.
func (m Model) Exposure(rate, d float64) float64 {
	switch {
	case m.FromBurst(rate, d):
		return m.BurstSeconds
	case m.FromGroup(d):
		return m.GroupSeconds
	}
	return m.Seconds
}

// MinBytes is the per-CPU memory the model says a capture of d seconds
// at rate with n sub-buffers needs to drop with a chance under risk.
func (m Model) MinBytes(rate float64, n int, d, risk float64) float64 {
	need := m.readable(rate, d, risk)
	if m.Batched() {
		if n < 2 {
			return math.Inf(1)
		}
		need *= float64(n) / float64(n-1)
	}
	return need
}

// DropChance is the model's chance that o drops in one of its runs: each
// run of T seconds at its own rate passes its readable buffer with
// probability 1 − e^(−T·ν).
func (m Model) DropChance(o Observation) float64 {
	exposure := 0.0
	for _, r := range o.runs() {
		rate := o.runRate(r)
		if rate <= 0 || o.RecordBytes <= 0 {
			continue
		}
		exposure += r.length() * m.Exceed(float64(o.PerCPUBytes)-o.unreadable(), rate)
	}
	return -math.Expm1(-exposure)
}

// String is the model in one line: its own a and τ, and H from Hold,
// the longer of its own tail's and its group's (so H may not follow
// from the a and τ beside it; the report marks such keys "group").
func (m Model) String() string {
	w := ""
	if m.Batched() {
		w = "·n/(n−1)"
	}
	bursts := "no bursts"
	if m.Burst.Found() {
		bursts = fmt.Sprintf("bursts: %.3g/s of up to %.0f events × %.3g B + r × %d B × %.2g ms", m.Burst.Rate, m.Burst.Bound, m.PerEvent, m.RecordBytes, 1e3*m.Burst.Lasts)
	}
	busy := ""
	if !math.IsNaN(m.ConsumerNs) && !m.Form.NoLoad {
		busy = fmt.Sprintf(" / (1 − r × %.0f ns)", m.ConsumerNs)
	}
	return fmt.Sprintf("%s: M ≥ y%s, y the larger of r × %d B × H%s (H = %.3g ms for a %d s capture; absences > x: %.3g/s × e^(−x/%.3g ms)) and the burst (%s)",
		m.Key, w, m.RecordBytes, busy, m.Hold(DefaultSeconds, Risk)*1e3, DefaultSeconds, m.Tail.Rate, m.Tail.Scale*1e3, bursts)
}

// Find returns the model of k.
func Find(models []Model, k Key) (Model, bool) {
	i := slices.IndexFunc(models, func(m Model) bool { return m.Key == k })
	if i < 0 {
		return Model{}, false
	}
	return models[i], true
}
