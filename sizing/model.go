// Package sizing is the buffer sizing model: the per-CPU memory a capture
// path needs to lose nothing at a given event rate, fitted from benchmark
// results and checked on results it was not fitted on.
//
// The buffer must hold what accumulates while the consumer is not
// reading, plus what is written but not readable yet:
//
//	M ≥ r·s·L + W
//
// with r events/s per CPU, s the bytes one record takes in the path's
// buffer, L the consumer's longest absence in a run (fitted: the
// Quantile of the fitted runs', or of all the runs of the paths read the
// same way where that is longer), and W the unreadable part: nothing for a
// reader woken per record, one sub-buffer (M/n) for a batched reader or
// relay, whose reader sees only finished sub-buffers. So M ≥ r·s·L·n/(n−1)
// there.
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

// Absences is what each run of the row says of the consumer's longest
// absence, in seconds of events: the backlog beyond the unreadable
// sub-buffer, or, for a run that dropped, at least as long as the
// readable buffer lasts (AtLeast). Runs without a backlog figure that
// dropped nothing say nothing.
func (o Observation) Absences() []Absence {
	unreadable := 0.0
	if o.Batched() && o.Subbufs > 0 {
		unreadable = float64(o.PerCPUBytes) / float64(o.Subbufs)
	}
	var out []Absence
	for _, run := range o.runs() {
		rate := o.runRate(run)
		if rate <= 0 || o.RecordBytes <= 0 || !run.Dropped && run.Backlog <= 0 {
			continue
		}
		b, atLeast := run.Backlog, run.Dropped
		if atLeast {
			b = float64(o.PerCPUBytes)
		}
		out = append(out, Absence{Seconds: max(b-unreadable, 0) / (rate * float64(o.RecordBytes)), AtLeast: atLeast, From: o.Source})
	}
	return out
}

// Absence is one run's longest consumer absence.
type Absence struct {
	Seconds float64
	AtLeast bool   // the run dropped: the absence was longer than Seconds
	From    string // the row
}

// Quantile is the share of the fitted runs whose longest absence L
// covers: a buffer sized by the model lets about one run in 20 drop.
const Quantile = 0.95

// absenceQuantile is the q quantile of the absences, by the Kaplan–Meier
// estimate: a run that dropped was away at least as long as its buffer
// lasted, and its buffer size has nothing to do with how long the
// consumer was away, which is the random censoring the estimate assumes.
// ok is false when the runs that dropped leave more than 1−q of the
// distribution above every absence measured exactly.
func absenceQuantile(abs []Absence, q float64) (a Absence, ok bool) {
	abs = slices.Clone(abs)
	// At equal values an exact absence comes before a censored one.
	slices.SortFunc(abs, func(x, y Absence) int {
		return cmp.Or(cmp.Compare(x.Seconds, y.Seconds), cmp.Compare(b2i(x.AtLeast), b2i(y.AtLeast)))
	})
	surviving, atRisk := 1.0, len(abs)
	for i := 0; i < len(abs); {
		j, exact := i, 0
		for ; j < len(abs) && abs[j].Seconds == abs[i].Seconds; j++ {
			if !abs[j].AtLeast {
				exact++
			}
		}
		if exact > 0 {
			surviving *= 1 - float64(exact)/float64(atRisk)
			if surviving <= 1-q+1e-9 {
				return abs[i], true
			}
		}
		atRisk -= j - i
		i = j
	}
	return Absence{}, false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Model is the fitted rule for one key.
type Model struct {
	Key
	RecordBytes int
	// Lag is L in seconds: the Quantile of the fitted runs' longest
	// absences, LagFrom the row of the run at that quantile.
	Lag     float64
	LagFrom string
	// Rates is the range of per-CPU rates of the fitted rows with a run
	// that kept up; beyond Rates[1] the fit has no such row.
	Rates [2]float64
	// Fitted counts the rows fitted, NoDrops those that dropped in no
	// run; RunsFitted the runs that gave an absence, Censored those of
	// them that dropped.
	Fitted, NoDrops      int
	RunsFitted, Censored int
	// LowerBound: the runs that dropped leave more than 1−Quantile of the
	// absences above every one measured, so Lag is twice the longest
	// absence any run proves (the grid's next step).
	LowerBound bool
	// FromGroup: Lag is its group's (Model.group), longer than what the
	// key's own runs say.
	FromGroup bool
	// Unsustained is the lowest per-CPU rate of a fitted rate at which
	// every run of every size dropped (0: none), and UnsustainedBytes the
	// largest size tested there: the consumer did not keep up at all.
	Unsustained      float64
	UnsustainedBytes int
}

// MinBytes is the per-CPU memory the model says is needed at rate with n
// sub-buffers.
func (m Model) MinBytes(rate float64, n int) float64 {
	need := rate * float64(m.RecordBytes) * m.Lag
	if m.Batched() {
		if n < 2 {
			return math.Inf(1)
		}
		need *= float64(n) / float64(n-1)
	}
	return need
}

// Predict says whether the model expects o's buffer to lose nothing.
func (m Model) Predict(o Observation) bool {
	return float64(o.PerCPUBytes) >= m.MinBytes(o.PerCPURate, o.Subbufs)
}

// String is the model in one line.
func (m Model) String() string {
	w := ""
	if m.Batched() {
		w = "·n/(n−1)"
	}
	return fmt.Sprintf("%s: M ≥ r × %d B × %.3g ms%s", m.Key, m.RecordBytes, m.Lag*1e3, w)
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
	groupAbs := map[Key][]Absence{}
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
		var abs []Absence
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
			abs = append(abs, o.Absences()...)
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
		if len(abs) == 0 {
			continue
		}
		m.RunsFitted = len(abs)
		for _, a := range abs {
			if a.AtLeast {
				m.Censored++
			}
		}
		m.Lag, m.LagFrom, m.LowerBound = lagOf(abs)
		models = append(models, m)
		groupAbs[m.group()] = append(groupAbs[m.group()], abs...)
	}
	// A rare long absence is the consumer's, whatever it reads, and one
	// path's runs may not show it: every model takes at least the L of all
	// the runs of its group (environment, placement, batched or not).
	for i := range models {
		m := &models[i]
		if l, from, lower := lagOf(groupAbs[m.group()]); l > m.Lag {
			m.Lag, m.LagFrom, m.LowerBound, m.FromGroup = l, from, lower, true
		}
	}
	slices.SortStableFunc(models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Wakeup, b.Wakeup), cmp.Compare(a.Consumer, b.Consumer))
	})
	return models
}

// lagOf is L of a set of absences: their Quantile, or twice the longest
// when the runs that dropped leave the quantile above every absence
// measured (lower).
func lagOf(abs []Absence) (l float64, from string, lower bool) {
	if a, ok := absenceQuantile(abs, Quantile); ok {
		return a.Seconds, a.From, false
	}
	longest := slices.MaxFunc(abs, func(x, y Absence) int { return cmp.Compare(x.Seconds, y.Seconds) })
	return 2 * longest.Seconds, longest.From, true
}

// group is the set of models whose runs also bound this one's L: same
// environment and consumer placement, and read in whole sub-buffers or
// not.
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
