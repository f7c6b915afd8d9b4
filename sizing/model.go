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
// buffer, L the consumer's longest absence (fitted), and W the unreadable
// part: nothing for a reader woken per record, one sub-buffer (M/n) for a
// batched reader or relay, whose reader sees only finished sub-buffers.
// So M ≥ r·s·L·n/(n−1) there.
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
	// Costs per event, medians (NaN when the row has none).
	ProbeNs, ConsumerNs, OverheadNs float64
	Source                          string // where it came from: file and row name
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

// Lag is the consumer absence the row's backlog implies: the backlog
// beyond the unreadable sub-buffer, in seconds of events.
func (o Observation) Lag() float64 {
	if o.PerCPURate <= 0 || o.RecordBytes <= 0 {
		return 0
	}
	b := o.MaxBacklog
	if o.Batched() && o.Subbufs > 0 {
		b -= float64(o.PerCPUBytes) / float64(o.Subbufs)
	}
	return max(b, 0) / (o.PerCPURate * float64(o.RecordBytes))
}

// Lasted is how long the row's readable buffer holds its events: the
// memory beyond the unreadable sub-buffer, in seconds of events.
func (o Observation) Lasted() float64 {
	o.MaxBacklog = float64(o.PerCPUBytes)
	return o.Lag()
}

// Model is the fitted rule for one key.
type Model struct {
	Key
	RecordBytes int
	// Lag is L in seconds: the longest absence a fitted row implies,
	// from the backlog of a row that dropped nothing or the buffer of one
	// that dropped where a bigger buffer at its rate kept up.
	Lag float64
	// LagFrom is the row that set Lag.
	LagFrom string
	// Rates is the range of per-CPU rates of the fitted rows that dropped
	// nothing; beyond Rates[1] the fit has no row that kept up.
	Rates [2]float64
	// Fitted counts the rows fitted, NoDrops those that dropped nothing.
	Fitted, NoDrops int
	// LowerBound: no fitted row was free of drops, so Lag is twice the
	// longest absence a dropping row proves (the grid's next step).
	LowerBound bool
	// Unsustained is the lowest per-CPU rate of a fitted rate at which
	// every size tested dropped (0: none), and UnsustainedBytes the largest
	// size tested there: the consumer did not keep up at all.
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

// Fit fits a model per key over the observations. A key whose rows all
// dropped in every run gets no model: nothing says how far its consumer
// falls behind when it keeps up.
func Fit(obs []Observation) []Model {
	var keys []Key
	for _, o := range obs {
		if !slices.Contains(keys, o.Key) {
			keys = append(keys, o.Key)
		}
	}
	var models []Model
	for _, k := range keys {
		m := Model{Key: k, Rates: [2]float64{math.Inf(1), 0}}
		// A row that dropped where a bigger buffer at the same rate kept
		// up, or in some of its runs only, says the consumer was away at
		// least as long as its readable buffer lasts. Where nothing kept
		// up in any run, the consumer was too slow for the rate, which no
		// buffer fixes.
		keptUp := map[string]bool{}
		lost := map[string][]Observation{} // rates at which nothing kept up
		var stallRates []float64           // of rows that dropped in a stall
		for _, o := range obs {
			if o.Key == k && (o.NoDrops || o.SomeRunsKeptUp) {
				keptUp[o.Workload+" "+o.Rate] = true
			}
		}
		for _, o := range obs {
			if o.Key != k {
				continue
			}
			m.Fitted++
			m.RecordBytes = o.RecordBytes
			l := o.Lag()
			switch {
			case o.NoDrops && o.MaxBacklog > 0:
				m.NoDrops++
				m.Rates = [2]float64{min(m.Rates[0], o.PerCPURate), max(m.Rates[1], o.PerCPURate)}
			case !o.NoDrops && keptUp[o.Workload+" "+o.Rate]:
				l = o.Lasted()
				stallRates = append(stallRates, o.PerCPURate)
			case !o.NoDrops:
				g := o.Workload + " " + o.Rate
				lost[g] = append(lost[g], o)
				continue
			default: // dropped nothing, but no backlog to learn from
				continue
			}
			if l > m.Lag || m.LagFrom == "" {
				m.Lag, m.LagFrom = l, o.Source
			}
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
		switch {
		case m.NoDrops > 0:
			models = append(models, m)
		case len(stallRates) > 0:
			// Every fitted row dropped in some run: the longest absence
			// they prove is a lower bound, so the model takes the grid's
			// next step, twice it.
			m.Lag *= 2
			m.LowerBound = true
			m.Rates = [2]float64{slices.Min(stallRates), slices.Max(stallRates)}
			models = append(models, m)
		}
	}
	slices.SortStableFunc(models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Wakeup, b.Wakeup), cmp.Compare(a.Consumer, b.Consumer))
	})
	return models
}

// Find returns the model of k.
func Find(models []Model, k Key) (Model, bool) {
	i := slices.IndexFunc(models, func(m Model) bool { return m.Key == k })
	if i < 0 {
		return Model{}, false
	}
	return models[i], true
}
