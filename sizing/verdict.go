package sizing

import (
	"fmt"
	"math"
)

// Verdict is what an answer says about a rate. It is decided once, in
// Decide; `slabbench size`, the report's answer table and the capture
// hint only format it.
type Verdict string

// The verdicts. Only Sized and Extrapolated come with a size.
const (
	// VerdictSized: a size inside the rates the held-out open loops
	// checked, for a capture no longer than the fitted runs together.
	VerdictSized Verdict = "sized"
	// VerdictExtrapolated: a size from the model's form beyond what its
	// rows checked (rate or capture length).
	VerdictExtrapolated Verdict = "extrapolated"
	// VerdictCannotKeepUp: no size, because the consumer does not keep up
	// at this rate, which no buffer fixes.
	VerdictCannotKeepUp Verdict = "cannot-keep-up"
	// VerdictNoModel: no size, because no rows of this key dropped
	// nothing, so nothing was fitted.
	VerdictNoModel Verdict = "no-model"
)

// HasSize says whether the verdict comes with a buffer size.
func (v Verdict) HasSize() bool { return v == VerdictSized || v == VerdictExtrapolated }

// Answer is the one decision for a key at a rate and capture length.
type Answer struct {
	Key
	Rate, Seconds float64
	Verdict       Verdict
	// Why says in one clause why the verdict is not VerdictSized ("" when
	// it is), from the figures that decided it.
	Why string
	// Rec is the model's recommendation (zero without a model); its size
	// is the answer only when Verdict.HasSize().
	Rec Recommendation
	// Cost is measured on the row the answer stands on (CostFor).
	Cost Cost
	// CPUShare is the share of each CPU the capture takes at Rate: Rate ×
	// (probe-ns + consumer-ns per event of Cost's row), or Rate × the
	// model's consumer cost where that row has none; 0 when unknown.
	CPUShare float64
	// Validated is the range of per-CPU rates the held-out open loops
	// confirmed (Validation.Range).
	Validated [2]float64
}

// noModelWhy says why key k has no model: no rows at all, no open loop
// (the model's rows) left as evidence, or none that dropped nothing.
func noModelWhy(obs []Observation, k Key) string {
	rows, open := 0, 0
	for _, o := range obs {
		if o.Key == k {
			rows++
			if o.Rate != "max" {
				open++
			}
		}
	}
	switch {
	case rows == 0:
		return fmt.Sprintf("no rows of %s in the results, so no model was fitted", k)
	case open == 0:
		return fmt.Sprintf("no open loop of %s is evidence (every one was skipped: off schedule, below target or short of runs; "+
			"the results file's --- SKIP lines say which), so no model was fitted", k)
	}
	return fmt.Sprintf("no rows of %s dropped nothing, so no model was fitted", k)
}

// Decide answers for key k at rate events/s per CPU over a capture of
// seconds: m is k's model (found false: none), obs every row, v the
// held-out check, workload the one the model is fitted on. A size is
// withheld wherever the rows say the consumer cannot keep up: the
// measured probe + consumer CPU per event comes to MaxLoad of a CPU or
// more, an open loop of k at or below the rate missed its target, or
// every size tested at or below it dropped.
func Decide(m Model, found bool, obs []Observation, v Validation, workload string, k Key, rate, seconds float64) Answer {
	a := Answer{Key: k, Rate: rate, Seconds: seconds, Verdict: VerdictNoModel}
	if !found {
		a.Why = noModelWhy(obs, k)
		return a
	}
	a.Key = m.Key
	a.Rec = m.Recommend(rate, seconds)
	a.Cost = CostFor(obs, m.Key, workload, rate, a.Rec.PerCPUBytes)
	measured := !math.IsNaN(a.Cost.ProbeNs) && !math.IsNaN(a.Cost.ConsumerNs)
	a.CPUShare = m.CPUShare(rate)
	if measured {
		a.CPUShare = cpuShare(rate, a.Cost.ProbeNs+a.Cost.ConsumerNs)
	}
	a.Validated[0], a.Validated[1], _, _ = v.Range(m)
	switch {
	case a.CPUShare >= MaxLoad:
		a.Verdict = VerdictCannotKeepUp
		a.Why = fmt.Sprintf("probe + consumer CPU per event (%.0f ns, measured) comes to %.0f%% of a CPU at this rate (the limit is %.0f%%)",
			a.Cost.ProbeNs+a.Cost.ConsumerNs, 100*a.CPUShare, 100*MaxLoad)
		if !measured {
			a.Why = fmt.Sprintf("the consumer's CPU per event (%.0f ns, measured) comes to %.0f%% of a CPU at this rate (the limit is %.0f%%)",
				m.ConsumerNs, 100*a.CPUShare, 100*MaxLoad)
		}
	case m.MissedTarget > 0 && rate >= m.MissedTarget:
		a.Verdict = VerdictCannotKeepUp
		a.Why = fmt.Sprintf("an open loop at %s events/s per CPU did not reach its target rate in any run (%s)", RateText(m.MissedTarget), m.MissedTargetRow)
	case a.Rec.Unsustained:
		a.Verdict = VerdictCannotKeepUp
		a.Why = fmt.Sprintf("at %s events/s per CPU every size tested up to %d bytes per CPU dropped", RateText(m.Unsustained), m.UnsustainedBytes)
	case !v.Validated(m, rate):
		a.Verdict = VerdictExtrapolated
		a.Why = fmt.Sprintf("outside the rates the held-out open loops checked (%s–%s events/s per CPU)", RateText(a.Validated[0]), RateText(a.Validated[1]))
	case a.Rec.Extrapolated():
		a.Verdict = VerdictExtrapolated
		a.Why = fmt.Sprintf("longer than the %.0f s the model's runs lasted together", m.Exposure(rate, seconds))
	default:
		a.Verdict = VerdictSized
	}
	return a
}

// CostFor returns the costs per event of the row an answer of key k at
// rate and perCPU bytes stands on: the open loop of workload at the rate
// nearest it (by ratio) and, among those, the memory nearest perCPU
// (larger on a tie); the workload slowdown from workload's closed-loop
// row of k with the memory nearest perCPU. NaN where no row says.
func CostFor(obs []Observation, k Key, workload string, rate float64, perCPU int) Cost {
	c := Cost{ProbeNs: math.NaN(), ConsumerNs: math.NaN(), OverheadNs: math.NaN()}
	memDist := func(o *Observation) float64 { return math.Abs(math.Log(float64(o.PerCPUBytes) / float64(perCPU))) }
	closer := func(a, b *Observation) bool { // a nearer perCPU than b
		da, db := memDist(a), memDist(b)
		return da < db-1e-9 || math.Abs(da-db) <= 1e-9 && a.PerCPUBytes > b.PerCPUBytes
	}
	var near, closed *Observation
	for i := range obs {
		o := &obs[i]
		if o.Key != k || o.Workload != workload {
			continue
		}
		if o.Rate == "max" {
			if !math.IsNaN(o.OverheadNs) && (closed == nil || closer(o, closed)) {
				closed = o
			}
			continue
		}
		if math.IsNaN(o.ProbeNs) || math.IsNaN(o.ConsumerNs) || o.PerCPURate <= 0 {
			continue
		}
		if near == nil {
			near = o
			continue
		}
		d := math.Abs(math.Log(o.PerCPURate / rate))
		dn := math.Abs(math.Log(near.PerCPURate / rate))
		// Rows of one target rate differ by a few percent in what they
		// reached: within 5% they are the same rate.
		switch {
		case d < dn-0.05:
			near = o
		case d <= dn+0.05 && closer(o, near):
			near = o
		}
	}
	if near != nil {
		c.ProbeNs, c.ConsumerNs, c.From = near.ProbeNs, near.ConsumerNs, near.Source
	}
	if closed != nil {
		c.OverheadNs, c.OverheadFrom = closed.OverheadNs, closed.Source
	}
	return c
}

// RateText writes a rate to three significant digits: 30.1k, 1.2M.
func RateText(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
