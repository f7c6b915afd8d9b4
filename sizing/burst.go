package sizing

import (
	"math"

	"gonum.org/v1/gonum/optimize"
)

// BurstThreshold is the smallest burst of other tasks' events a Burst
// describes, in events on one CPU: smaller ones are ordinary traffic.
const BurstThreshold = 256

// MinBurstRate is the burst rate, per second, below which an environment
// is said to have none.
const MinBurstRate = 1e-3

// Burst is how often other tasks flood one CPU's buffer with slab events
// of their own, whatever the capture's rate (on the benchmark host, a
// kernel daemon's periodic scan: docs/sizing.md), and how
// much of a flood the buffer has to hold:
//
//	bursts leaving more than e events unread arrive at
//	β·(K − e)/(K − u) per second, for u ≤ e ≤ K
//
// with u = BurstThreshold: the consumer meets a burst at a random point,
// so the part it has not read yet when the backlog peaks is uniform up to
// the whole burst, K events. On top of them the backlog holds Lasts of the
// capture's own events. The zero Burst has no bursts.
type Burst struct {
	Rate  float64 // β, per second
	Bound float64 // K, events
	// Lasts is how long after a burst begins the consumer has caught up:
	// the backlog also holds that much of the capture's own events.
	Lasts float64 // δ, seconds
}

// Found says whether the bursts are frequent enough to count.
func (b Burst) Found() bool { return b.Rate >= MinBurstRate }

// Exceed is how many bursts leaving more than e events arrive per second.
func (b Burst) Exceed(e float64) float64 {
	if b.Rate == 0 || e >= b.Bound {
		return 0
	}
	return b.Rate * min((b.Bound-e)/(b.Bound-BurstThreshold), 1)
}

// density is −d/de of Exceed above the threshold.
func (b Burst) density(e float64) float64 {
	if b.Rate == 0 || e < BurstThreshold || e >= b.Bound {
		return 0
	}
	return b.Rate / (b.Bound - BurstThreshold)
}

// events is the burst, in events, behind a readable backlog of y bytes
// at bytesPerSec of the capture's own, perEvent bytes a burst event.
func (b Burst) events(y, bytesPerSec, perEvent float64) float64 {
	return (y - bytesPerSec*b.Lasts) / perEvent
}

// Hold is the burst, in events, a capture of d seconds exceeds with
// probability risk: BurstThreshold when bursts that large are rarer.
func (b Burst) Hold(d, risk float64) float64 {
	target := -math.Log1p(-risk) / d
	if b.Exceed(BurstThreshold) <= target {
		return BurstThreshold
	}
	return b.Bound - target/b.Rate*(b.Bound-BurstThreshold)
}

// solve is the least x ≥ 0 at which above turns false, for an above that
// is true up to some x and false beyond it, to a relative 1e-9.
func solve(above func(float64) bool) float64 {
	lo, hi := 0.0, 1.0
	for above(hi) {
		lo, hi = hi, 2*hi
		if hi > 1e15 {
			return math.Inf(1)
		}
	}
	for hi-lo > 1e-9*hi {
		if m := (lo + hi) / 2; above(m) {
			lo = m
		} else {
			hi = m
		}
	}
	return hi
}

// fitBurst is the maximum-likelihood Burst of the runs of several keys,
// each under its own fixed tail (tails[i] for runs[i]): β from 10⁻⁶/s,
// K up to 10⁷ events, δ up to 100 ms.
func fitBurst(runs [][]fitRun, tails []Tail, start Burst) Burst {
	burst := func(p []float64) Burst {
		return Burst{Rate: math.Exp(p[0]), Bound: BurstThreshold + math.Exp(p[1]), Lasts: p[2]}
	}
	p := optimize.Problem{Func: func(p []float64) float64 {
		if p[0] < math.Log(1e-6) || p[1] < 0 || p[1] > math.Log(1e7) || p[2] < 0 || p[2] > 0.1 {
			return math.Inf(1)
		}
		b, ll := burst(p), 0.0
		for i := range runs {
			ll += logLikelihood(tails[i], b, runs[i])
		}
		if math.IsNaN(ll) {
			return math.Inf(1)
		}
		return -ll
	}}
	// The likelihood is not smooth (a run's backlog enters or leaves the
	// bursts' range as K moves): climb from the last fit and from small
	// and large bursts, and keep the highest.
	starts := []Burst{{Rate: 0.1, Bound: 1000, Lasts: 0.002}, {Rate: 0.1, Bound: 10000, Lasts: 0.002}}
	if start.Rate > 0 {
		starts = append(starts, start)
	}
	best, bestF := Burst{}, math.Inf(1)
	for _, s := range starts {
		res, err := optimize.Minimize(p, []float64{math.Log(s.Rate), math.Log(s.Bound - BurstThreshold), s.Lasts}, nil, &optimize.NelderMead{})
		if err == nil && res.F < bestF {
			best, bestF = burst(res.X), res.F
		}
	}
	return best
}
