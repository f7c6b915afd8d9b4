package sizing

import "math"

// Scores are Brier scores of forecasts that a held-out open loop drops in
// some run: the mean over the rows of (forecast chance − dropped)², with
// dropped 1 or 0; 0 is perfect, and a forecast of ½ for every row scores
// ¼. A proper score rewards chances that are right, not only the side of
// ½ they fall on, so a model that knows its own uncertainty beats one
// that is merely lucky on coin-flip rows.
type Scores struct {
	Rows int `json:"rows"`
	// Model forecasts each row's drop chance (Check.DropChance).
	Model float64 `json:"model"`
	// BaseRate forecasts, for every row, the share of its key's fitted
	// rows that dropped.
	BaseRate float64 `json:"base_rate"`
	// NearestClean forecasts no drop (0) where the row's memory is at
	// least the smallest loss-free memory of its key's fitted open loop
	// at the rate nearest its own, scaled by the ratio of their rates,
	// and a drop (1) otherwise: the rule of thumb a user would apply to
	// the benchmark rows without a model.
	NearestClean float64 `json:"nearest_clean"`
}

// Beats says whether the model scored better (lower) than both
// baselines.
func (s Scores) Beats() bool { return s.Rows > 0 && s.Model < s.BaseRate && s.Model < s.NearestClean }

// Scores scores the model and the two baselines on v's held-out open
// loops with a model, the baselines built from fitted (the rows the
// model was fitted on).
func (v Validation) Scores(fitted []Observation) Scores {
	var s Scores
	for _, c := range v.OpenLoops().Checks {
		if !c.HasModel {
			continue
		}
		y := float64(b2i(!c.NoDrops))
		s.Rows++
		s.Model += sq(c.DropChance - y)
		s.BaseRate += sq(baseRate(fitted, c.Key) - y)
		s.NearestClean += sq(nearestClean(fitted, c.Observation) - y)
	}
	if s.Rows > 0 {
		n := float64(s.Rows)
		s.Model, s.BaseRate, s.NearestClean = s.Model/n, s.BaseRate/n, s.NearestClean/n
	}
	return s
}

// baseRate is the share of key k's fitted rows that dropped.
func baseRate(fitted []Observation, k Key) float64 {
	var n, dropped int
	for _, o := range fitted {
		if o.Key == k {
			n++
			dropped += b2i(!o.NoDrops)
		}
	}
	if n == 0 {
		return 0.5
	}
	return float64(dropped) / float64(n)
}

// nearestClean is the nearest-clean-size rule's forecast for row o: 0
// (no drop) or 1.
func nearestClean(fitted []Observation, o Observation) float64 {
	if r, ok := NearestCleanSize(fitted, o.Key, o.PerCPURate); ok && float64(o.PerCPUBytes) >= r.Need {
		return 0
	}
	return 1
}

// CleanRule is the nearest-clean-size rule's answer for one rate.
type CleanRule struct {
	CleanBytes float64 `json:"clean_bytes"` // the smallest loss-free per-CPU memory at the nearest fitted rate
	AtRate     float64 `json:"at_rate"`     // that row's events/s per CPU
	Need       float64 `json:"need_bytes"`  // CleanBytes scaled by the ratio of the rates
}

// NearestCleanSize is the rule of thumb without a model: the smallest
// per-CPU memory that dropped nothing in the fitted open loops of key k
// at the rate nearest rate, scaled by the ratio of the rates. ok is false
// when that rate has no loss-free row.
func NearestCleanSize(fitted []Observation, k Key, rate float64) (CleanRule, bool) {
	var nearest *Observation
	for i := range fitted {
		f := &fitted[i]
		if f.Key != k || f.Rate == "max" {
			continue
		}
		if nearest == nil || math.Abs(f.PerCPURate-rate) < math.Abs(nearest.PerCPURate-rate) {
			nearest = f
		}
	}
	if nearest == nil {
		return CleanRule{}, false
	}
	r := CleanRule{CleanBytes: math.Inf(1)}
	for _, f := range fitted {
		if f.Key == k && f.Workload == nearest.Workload && f.Rate == nearest.Rate && f.NoDrops && float64(f.PerCPUBytes) < r.CleanBytes {
			r.CleanBytes, r.AtRate = float64(f.PerCPUBytes), f.PerCPURate
		}
	}
	if math.IsInf(r.CleanBytes, 1) || r.AtRate <= 0 {
		return CleanRule{}, false
	}
	r.Need = r.CleanBytes * rate / r.AtRate
	return r, true
}

func sq(x float64) float64 { return x * x }
