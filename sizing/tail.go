package sizing

import (
	"math"

	"gonum.org/v1/gonum/optimize"
)

// Threshold is the shortest absence a tail describes: shorter ones are
// the gaps between ordinary reads, which any buffer covers.
const Threshold = 0.0005

// Tail is how often the consumer is away from its buffer for longer than
// x seconds, for x ≥ Threshold:
//
//	λ(x) = a·e^(−x/τ)  per second
//
// Absences are taken to arrive independently, so a capture of d seconds
// is away longer than x at least once with probability 1 − e^(−d·λ(x)).
type Tail struct {
	Rate  float64 // a, per second
	Scale float64 // τ, seconds
}

// Exceed is λ(x): absences longer than x per second.
func (t Tail) Exceed(x float64) float64 {
	return t.Rate * math.Exp(-max(x, Threshold)/t.Scale)
}

// Risk is the chance that a capture of d seconds is away longer than x.
func (t Tail) Risk(x, d float64) float64 { return -math.Expm1(-d * t.Exceed(x)) }

// Hold is the absence a capture of d seconds outlasts with probability
// 1 − risk: λ(x)·d = −ln(1 − risk), so x = τ·ln(a·d / −ln(1 − risk)).
func (t Tail) Hold(d, risk float64) float64 {
	return max(t.Scale*math.Log(t.Rate*d/-math.Log1p(-risk)), Threshold)
}

// tailRun is what one run says of the tail: it lasted Seconds and its
// longest absence was Absence (Dropped false), or longer than Absence,
// the time its readable buffer lasted (Dropped true).
type tailRun struct {
	Seconds, Absence float64
	Dropped          bool
}

// logLikelihood of the runs under t: a run of T seconds is never away
// longer than x with probability e^(−T·λ(x)).
func (t Tail) logLikelihood(runs []tailRun) float64 {
	ll := 0.0
	for _, r := range runs {
		switch {
		case r.Dropped:
			ll += math.Log(t.Risk(r.Absence, r.Seconds))
		case r.Absence < Threshold:
			ll -= r.Seconds * t.Exceed(Threshold)
		default: // the density of the longest absence at r.Absence
			ll += math.Log(r.Seconds*t.Exceed(r.Absence)/t.Scale) - r.Seconds*t.Exceed(r.Absence)
		}
	}
	return ll
}

// fitTail is the maximum-likelihood tail of the runs, τ between 10 µs
// and 1 s.
func fitTail(runs []tailRun) (Tail, bool) {
	tail := func(p []float64) Tail { return Tail{Rate: math.Exp(p[0]), Scale: math.Exp(p[1])} }
	p := optimize.Problem{Func: func(p []float64) float64 {
		if p[1] < math.Log(1e-5) || p[1] > 0 {
			return math.Inf(1)
		}
		ll := tail(p).logLikelihood(runs)
		if math.IsNaN(ll) {
			return math.Inf(1)
		}
		return -ll
	}}
	res, err := optimize.Minimize(p, []float64{math.Log(10), math.Log(1e-3)}, nil, &optimize.NelderMead{})
	if err != nil || math.IsInf(res.F, 0) {
		return Tail{}, false
	}
	return tail(res.X), true
}

// tailRuns are the row's runs as the tail sees them: the absence beyond
// what its buffer cannot hand to the reader yet (the sub-buffer being
// filled, for a batched reader or relay), over the run's rate × record
// size. Runs without a duration or rate say nothing.
func (o Observation) tailRuns() []tailRun {
	var out []tailRun
	for _, run := range o.runs() {
		rate := o.runRate(run)
		if rate <= 0 || run.Seconds <= 0 || o.RecordBytes <= 0 {
			continue
		}
		b := run.Backlog
		if run.Dropped {
			b = float64(o.PerCPUBytes)
		}
		out = append(out, tailRun{Seconds: run.Seconds, Absence: max(b-o.unreadable(), 0) / (rate * float64(o.RecordBytes)), Dropped: run.Dropped})
	}
	return out
}

// unreadable is the part of a CPU's buffer the reader cannot see yet: one
// sub-buffer for a batched reader or relay, nothing for a reader woken
// per record.
func (o Observation) unreadable() float64 {
	if o.Batched() && o.Subbufs > 0 {
		return float64(o.PerCPUBytes) / float64(o.Subbufs)
	}
	return 0
}
