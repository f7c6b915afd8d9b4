// Package sizing is the buffer sizing model: the per-CPU memory a capture
// path needs to lose nothing at a given event rate over a capture of a
// given length, fitted from benchmark results and checked on results it
// was not fitted on.
//
// The buffer must hold what accumulates while the consumer is not
// reading, plus what is written but not readable yet:
//
//	M ≥ r·s·H + W
//
// with r events/s per CPU, s the bytes one record takes in the path's
// buffer, H the longest absence of the consumer a capture of d seconds
// meets but for a small Risk (see Tail: absences longer than x arrive at
// a·e^(−x/τ) per second, so H = τ·ln(a·d/Risk) roughly), and W the
// unreadable part: nothing for a reader woken per record, one sub-buffer
// (M/n) for a batched reader or relay, whose reader sees only finished
// sub-buffers. So M ≥ r·s·H·n/(n−1) there.
package sizing

import (
	"cmp"
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
// (README, Sizing a buffer).
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
	RecordBytes int
	// Tail is fitted on the key's runs, GroupTail on every run of its
	// group (Model.group); the model takes whichever has the longer
	// absences at a length (a rare long absence is the consumer's,
	// whatever path it reads, and one path's runs may not show it).
	Tail, GroupTail Tail
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
}

// Hold is the absence the buffer must outlast in a capture of d seconds
// for the chance of a drop to stay under risk.
func (m Model) Hold(d, risk float64) float64 {
	return max(m.Tail.Hold(d, risk), m.GroupTail.Hold(d, risk))
}

// Exceed is λ(x) of whichever of the key's and its group's tails has
// the longer absences at x, as Hold takes the longer of their holds.
func (m Model) Exceed(x float64) float64 { return max(m.Tail.Exceed(x), m.GroupTail.Exceed(x)) }

// FromGroup says whether the group's tail sets Hold at d seconds.
func (m Model) FromGroup(d float64) bool {
	return m.GroupTail.Hold(d, Risk) > m.Tail.Hold(d, Risk)
}

// Exposure is how long the runs of the tail that sets Hold at d seconds
// (the key's or its group's) lasted together.
func (m Model) Exposure(d float64) float64 {
	if m.FromGroup(d) {
		return m.GroupSeconds
	}
	return m.Seconds
}

// MinBytes is the per-CPU memory the model says a capture of d seconds
// at rate with n sub-buffers needs to drop with a chance under risk.
func (m Model) MinBytes(rate float64, n int, d, risk float64) float64 {
	need := rate * float64(m.RecordBytes) * m.Hold(d, risk)
	if m.Batched() {
		if n < 2 {
			return math.Inf(1)
		}
		need *= float64(n) / float64(n-1)
	}
	return need
}

// Predict says whether the model expects o's buffer to drop in none of
// its runs (at RowRisk over their total length).
func (m Model) Predict(o Observation) bool {
	return float64(o.PerCPUBytes) >= m.MinBytes(o.PerCPURate, o.Subbufs, o.Seconds(), RowRisk)
}

// DropChance is the model's chance that o drops in one of its runs: each
// run of T seconds at its own rate meets an absence longer than its
// readable buffer lasts with probability 1 − e^(−T·λ(x)).
func (m Model) DropChance(o Observation) float64 {
	exposure := 0.0
	for _, r := range o.runs() {
		rate := o.runRate(r)
		if rate <= 0 || o.RecordBytes <= 0 {
			continue
		}
		x := (float64(o.PerCPUBytes) - o.unreadable()) / (rate * float64(o.RecordBytes))
		exposure += r.length() * m.Exceed(x)
	}
	return -math.Expm1(-exposure)
}

// String is the model in one line.
func (m Model) String() string {
	w := ""
	if m.Batched() {
		w = "·n/(n−1)"
	}
	return fmt.Sprintf("%s: M ≥ r × %d B × H%s, H = %.3g ms for a %d s capture (absences > x: %.3g/s × e^(−x/%.3g ms))",
		m.Key, m.RecordBytes, w, m.Hold(DefaultSeconds, Risk)*1e3, DefaultSeconds, m.Tail.Rate, m.Tail.Scale*1e3)
}

// Fit fits a model per key over the observations. A key whose runs all
// dropped gets no model: nothing says how far its consumer falls behind
// when it keeps up.
func Fit(obs []Observation) []Model {
	var keys []Key
	for _, o := range obs {
		if !slices.Contains(keys, o.Key) {
			keys = append(keys, o.Key)
		}
	}
	var models []Model
	groupRuns := map[Key][]tailRun{}
	for _, k := range keys {
		m := Model{Key: k, Rates: [2]float64{math.Inf(1), 0}}
		// Where no run of any size kept up at a rate, the consumer was
		// too slow for it, which no buffer fixes: those runs say nothing
		// of its absences.
		keptUp := map[string]bool{}
		for _, o := range obs {
			if o.Key == k && (o.NoDrops || o.SomeRunsKeptUp) {
				keptUp[o.Workload+" "+o.Rate] = true
			}
		}
		lost := map[string][]Observation{}
		var runs []tailRun
		for _, o := range obs {
			if o.Key != k {
				continue
			}
			m.Fitted++
			m.RecordBytes = o.RecordBytes
			g := o.Workload + " " + o.Rate
			if !keptUp[g] {
				lost[g] = append(lost[g], o)
				continue
			}
			if o.NoDrops {
				m.NoDrops++
			}
			if o.NoDrops || o.SomeRunsKeptUp {
				m.Rates = [2]float64{min(m.Rates[0], o.PerCPURate), max(m.Rates[1], o.PerCPURate)}
			}
			runs = append(runs, o.tailRuns()...)
		}
		for _, rows := range lost {
			var rates []float64
			largest := 0
			for _, o := range rows {
				rates = append(rates, o.PerCPURate)
				largest = max(largest, o.PerCPUBytes)
			}
			slices.Sort(rates)
			if r := rates[len(rates)/2]; m.Unsustained == 0 || r < m.Unsustained {
				m.Unsustained, m.UnsustainedBytes = r, largest
			}
		}
		if len(runs) == 0 {
			continue
		}
		var ok bool
		if m.Tail, ok = fitTail(runs); !ok {
			continue
		}
		m.RunsFitted = len(runs)
		for _, r := range runs {
			m.Censored += b2i(r.Dropped)
			m.Seconds += r.Seconds
			m.LongestRun = max(m.LongestRun, r.Seconds)
		}
		groupRuns[m.group()] = append(groupRuns[m.group()], runs...)
		models = append(models, m)
	}
	groupTails, groupSeconds := map[Key]Tail{}, map[Key]float64{}
	for g, runs := range groupRuns {
		groupTails[g], _ = fitTail(runs)
		for _, r := range runs {
			groupSeconds[g] += r.Seconds
		}
	}
	for i := range models {
		g := models[i].group()
		models[i].GroupTail, models[i].GroupSeconds = groupTails[g], groupSeconds[g]
	}
	slices.SortStableFunc(models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Wakeup, b.Wakeup), cmp.Compare(a.Consumer, b.Consumer))
	})
	return models
}

// group is the set of models whose runs also bound this one's absences:
// same environment and consumer placement, and read in whole sub-buffers
// or not.
func (m Model) group() Key {
	g := Key{Env: m.Env, Consumer: m.Consumer, Wakeup: "every"}
	if m.Batched() {
		g.Wakeup = "batched"
	}
	return g
}

// Find returns the model of k.
func Find(models []Model, k Key) (Model, bool) {
	i := slices.IndexFunc(models, func(m Model) bool { return m.Key == k })
	if i < 0 {
		return Model{}, false
	}
	return models[i], true
}
