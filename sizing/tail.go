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

// fitRun is what one run says of the tail and the bursts: it lasted
// Seconds at BytesPerSec (its rate × record bytes), and its most readable
// backlog was Readable bytes (Dropped false) or more than Readable, its
// readable buffer (Dropped true). PerEvent is the bytes a foreign event
// adds to the CPU's share of the buffer.
type fitRun struct {
	Seconds, Readable, BytesPerSec, PerEvent float64
	// AbsenceBytesPerSec is what a second of the consumer's absence
	// leaves in the buffer: BytesPerSec over 1 − ρ, ρ the share of a CPU
	// the consumer needs at the run's rate (see Model.absenceBytesPerSec).
	AbsenceBytesPerSec float64
	Dropped            bool
}

// exceed is how often the run's readable backlog passes y bytes, per
// second: an absence longer than y/AbsenceBytesPerSec (BytesPerSec over
// 1 − ρ), or a burst whose unread events, with δ of the run's own
// (Burst.events), pass y.
func (r fitRun) exceed(t Tail, b Burst, y float64) float64 {
	return t.Exceed(y/r.AbsenceBytesPerSec) + b.Exceed(b.events(y, r.BytesPerSec, r.PerEvent))
}

// logLikelihood of the runs under t and b: a run of T seconds keeps its
// readable backlog under y with probability e^(−T·ν(y)), ν = exceed.
func logLikelihood(t Tail, b Burst, runs []fitRun) float64 {
	ll := 0.0
	for _, r := range runs {
		nu := r.exceed(t, b, r.Readable)
		if r.Dropped {
			ll += math.Log(-math.Expm1(-r.Seconds * nu))
			continue
		}
		// The density of the largest backlog at Readable, from whichever
		// part is above its threshold there.
		dens := 0.0
		if x := r.Readable / r.AbsenceBytesPerSec; x >= Threshold {
			dens += t.Exceed(x) / t.Scale / r.AbsenceBytesPerSec
		}
		dens += b.density(b.events(r.Readable, r.BytesPerSec, r.PerEvent)) / r.PerEvent
		if dens > 0 {
			ll += math.Log(r.Seconds * dens)
		}
		ll -= r.Seconds * nu
	}
	return ll
}

// fitTail is the maximum-likelihood tail of the runs beside the bursts
// b, τ between 10 µs and 1 s.
func fitTail(runs []fitRun, b Burst) (Tail, bool) {
	tail := func(p []float64) Tail { return Tail{Rate: math.Exp(p[0]), Scale: math.Exp(p[1])} }
	p := optimize.Problem{Func: func(p []float64) float64 {
		if p[1] < math.Log(1e-5) || p[1] > 0 {
			return math.Inf(1)
		}
		ll := logLikelihood(tail(p), b, runs)
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

// fitRuns are the row's runs as the fit sees them: the backlog beyond
// what its buffer cannot hand to the reader yet (the sub-buffer being
// filled, for a batched reader or relay). Runs without a duration or
// rate say nothing.
func (o Observation) fitRuns(f Form) []fitRun {
	var out []fitRun
	for _, run := range o.runs() {
		rate := o.runRate(run)
		if rate <= 0 || run.Seconds <= 0 || o.RecordBytes <= 0 {
			continue
		}
		b := run.Backlog
		if run.Dropped {
			b = float64(o.PerCPUBytes)
		}
		out = append(out, fitRun{Seconds: run.Seconds, Readable: max(b-o.unreadable(), 0),
			BytesPerSec: rate * float64(o.RecordBytes), AbsenceBytesPerSec: absenceBytesPerSec(rate, o.RecordBytes, o.ConsumerNs, f),
			PerEvent: o.perEvent(), Dropped: run.Dropped})
	}
	return out
}

// perEvent is the bytes one foreign event adds to one CPU's share of
// the buffer: a record, or for the ring buffer, which every CPU shares,
// a record over the CPUs.
func (o Observation) perEvent() float64 {
	if o.Path == "ringbuf" && o.CPUs > 0 {
		return float64(o.RecordBytes) / float64(o.CPUs)
	}
	return float64(o.RecordBytes)
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

// MaxLoad bounds the consumer's share of a CPU the model scales absences
// by: at a whole CPU it never catches up, which no buffer fixes.
const MaxLoad = 0.9

// cpuShare is the share of a CPU a consumer costing consumerNs per event
// needs at rate events/s (0 where the cost is unknown); above 1 it cannot
// keep up.
func cpuShare(rate, consumerNs float64) float64 {
	if math.IsNaN(consumerNs) || consumerNs <= 0 {
		return 0
	}
	return rate * consumerNs * 1e-9
}

// load is ρ: cpuShare at most MaxLoad.
func load(rate, consumerNs float64) float64 { return min(cpuShare(rate, consumerNs), MaxLoad) }
