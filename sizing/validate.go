package sizing

import (
	"cmp"
	"math"
	"slices"
	"strconv"
)

// Split divides observations into the ones the model is fitted on and
// the held-out rest. Where some observations are declared held out
// (Observation.HeldOut: by the benchmark plan, before they were measured),
// the model is fitted on the other open loops of workload; else, per key,
// on the open loops of workload at every other rate (the lowest, the
// third lowest, ...), a rule chosen after the results were seen, which
// declared says. Everything else (other workloads, closed loops) is held
// out either way.
func Split(obs []Observation, workload string) (fit, held []Observation, declared bool) {
	declared = slices.ContainsFunc(obs, func(o Observation) bool { return o.HeldOut })
	if declared {
		for _, o := range obs {
			if _, err := strconv.ParseFloat(o.Rate, 64); err == nil && o.Workload == workload && !o.HeldOut {
				fit = append(fit, o)
			} else {
				held = append(held, o)
			}
		}
		return fit, held, true
	}
	rates := map[Key][]float64{}
	for _, o := range obs {
		if v, err := strconv.ParseFloat(o.Rate, 64); err == nil && o.Workload == workload && !slices.Contains(rates[o.Key], v) {
			rates[o.Key] = append(rates[o.Key], v)
		}
	}
	for _, rs := range rates {
		slices.Sort(rs)
	}
	for _, o := range obs {
		v, err := strconv.ParseFloat(o.Rate, 64)
		if err == nil && o.Workload == workload && slices.Index(rates[o.Key], v)%2 == 0 {
			fit = append(fit, o)
		} else {
			held = append(held, o)
		}
	}
	return fit, held, false
}

// Check is one held-out observation against its model.
type Check struct {
	Observation
	// HasModel is false when no model was fitted for the key.
	HasModel bool
	// Need is the model's minimum memory at the row's rate, sub-buffer
	// count and total run length, for RowRisk; PredictNoDrops is Need <=
	// PerCPUBytes.
	Need           float64
	PredictNoDrops bool
	// InRange says whether the row's rate is within the rates the model
	// saw keep up (Model.Rates, up to twice the highest).
	InRange bool
	// Runs and RunsRight count the row's runs one by one: predicted
	// loss-free at that run's own rate, and dropped or not.
	Runs, RunsRight int
	// DropChance is the model's chance that the row drops in some run.
	DropChance float64
}

// Correct says whether the prediction matched the row.
func (c Check) Correct() bool { return c.HasModel && c.PredictNoDrops == c.NoDrops }

// Boundary is the measured loss boundary of one key, workload and
// open-loop rate on the tested grid, against the model's.
type Boundary struct {
	Key
	Workload, Rate string
	PerCPURate     float64 // the median of the rows'
	// NoDrops is the smallest per-CPU memory that dropped nothing (0:
	// none did); Lossy the largest below it that dropped (0: none was
	// tested).
	NoDrops, Lossy int
	// Need is the model's minimum at NoDrops's sub-buffer count (or the
	// largest row's when nothing was loss-free).
	Need float64
}

// Ratio is Need over the smallest loss-free memory: 1 or a little under
// means the model found the boundary; the grid's steps are ×2, so a
// ratio in (Lossy/NoDrops, 1] is exact on it. NaN when nothing was
// loss-free.
func (b Boundary) Ratio() float64 {
	if b.NoDrops == 0 {
		return math.NaN()
	}
	return b.Need / float64(b.NoDrops)
}

// Within2x says whether the model's minimum is within a factor of 2 of
// the smallest loss-free memory (false when nothing was loss-free).
func (b Boundary) Within2x() bool {
	r := b.Ratio()
	return r >= 0.5 && r <= 2
}

// Validation is the model checked on held-out rows.
type Validation struct {
	Checks     []Check
	Boundaries []Boundary
}

// Accuracy counts the held-out rows with a model and how many it
// classified right (loss-free or lossy); inRange limits both to the rows
// within a model's rates.
func (v Validation) Accuracy(inRange bool) (correct, total int) {
	for _, c := range v.Checks {
		if !c.HasModel || inRange && !c.InRange {
			continue
		}
		total++
		if c.Correct() {
			correct++
		}
	}
	return correct, total
}

// ForEnv is the part of v about one environment (Key.Env).
func (v Validation) ForEnv(env string) Validation {
	var out Validation
	for _, c := range v.Checks {
		if c.Env == env {
			out.Checks = append(out.Checks, c)
		}
	}
	for _, b := range v.Boundaries {
		if b.Env == env {
			out.Boundaries = append(out.Boundaries, b)
		}
	}
	return out
}

// OpenLoops is the part of v about open loops: rows run at a set rate,
// which the model is for. In a closed loop the workload runs as fast as
// it can beside the consumer, and whether the consumer keeps up is its
// share of the CPUs, not an absence a buffer outlasts.
func (v Validation) OpenLoops() Validation {
	out := Validation{Boundaries: v.Boundaries}
	for _, c := range v.Checks {
		if c.Rate != "max" {
			out.Checks = append(out.Checks, c)
		}
	}
	return out
}

// Ceiling is what any rule that says "this memory or more drops nothing"
// per key, workload and rate could get right of the held-out open-loop
// rows with a model: at the best threshold of each such series. Rows
// where a larger buffer dropped and a smaller one did not cap it below
// 100%.
func (v Validation) Ceiling() (best, total int) {
	type series struct {
		Key
		workload, rate string
	}
	rows := map[series][]Check{}
	var order []series
	for _, c := range v.Checks {
		if !c.HasModel || c.Rate == "max" {
			continue
		}
		s := series{c.Key, c.Workload, c.Rate}
		if _, ok := rows[s]; !ok {
			order = append(order, s)
		}
		rows[s] = append(rows[s], c)
	}
	for _, s := range order {
		cs := rows[s]
		slices.SortFunc(cs, func(a, b Check) int { return cmp.Compare(a.PerCPUBytes, b.PerCPUBytes) })
		most := 0
		for t := 0; t <= len(cs); t++ { // rows t and above said loss-free
			right := 0
			for i, c := range cs {
				right += b2i((i >= t) == c.NoDrops)
			}
			most = max(most, right)
		}
		best += most
		total += len(cs)
	}
	return best, total
}

// CalibrationBin is the held-out rows with a model whose chance of a drop
// was in [Lo, Hi): how many, the mean chance, and how many dropped.
type CalibrationBin struct {
	Lo, Hi         float64
	Rows, Dropped  int
	MeanDropChance float64
}

// Calibration bins the held-out rows by the model's chance that they
// drop: a model that knows its own uncertainty has about MeanDropChance
// of each bin's rows drop.
func (v Validation) Calibration(edges ...float64) []CalibrationBin {
	var bins []CalibrationBin
	for i := 0; i+1 < len(edges); i++ {
		bins = append(bins, CalibrationBin{Lo: edges[i], Hi: edges[i+1]})
	}
	for _, c := range v.Checks {
		if !c.HasModel {
			continue
		}
		for i := range bins {
			b := &bins[i]
			if c.DropChance >= b.Lo && (c.DropChance < b.Hi || i == len(bins)-1 && c.DropChance <= b.Hi) {
				b.Rows++
				b.Dropped += b2i(!c.NoDrops)
				b.MeanDropChance += c.DropChance
				break
			}
		}
	}
	for i := range bins {
		if bins[i].Rows > 0 {
			bins[i].MeanDropChance /= float64(bins[i].Rows)
		}
	}
	return bins
}

// Expected is how many of the held-out rows with a model it would get
// right if its chances were exactly the rows': a row it gives a chance p
// of dropping is right with probability max(p, 1 − p). Rows whose fate is
// a coin flip (a burst or not in their runs) cap it below 100%, whatever
// the model.
func (v Validation) Expected() (right float64, total int) {
	for _, c := range v.Checks {
		if c.HasModel {
			right += max(c.DropChance, 1-c.DropChance)
			total++
		}
	}
	return right, total
}

// RunAccuracy counts the held-out runs, one by one, and how many the
// model classified right.
func (v Validation) RunAccuracy() (correct, total int) {
	for _, c := range v.Checks {
		correct += c.RunsRight
		total += c.Runs
	}
	return correct, total
}

// Validate checks the models on the held-out observations.
func Validate(models []Model, held []Observation) Validation {
	var v Validation
	type group struct {
		Key
		workload, rate string
	}
	var groups []group
	for _, o := range held {
		m, ok := Find(models, o.Key)
		c := Check{Observation: o, HasModel: ok}
		if ok {
			c.Need = m.MinBytes(o.PerCPURate, o.Subbufs, o.Seconds(), RowRisk)
			c.PredictNoDrops = float64(o.PerCPUBytes) >= c.Need
			c.DropChance = m.DropChance(o)
			c.InRange = m.inRange(o.PerCPURate)
			for _, r := range o.PerRun {
				c.Runs++
				if (float64(o.PerCPUBytes) >= m.MinBytes(o.runRate(r), o.Subbufs, r.length(), RowRisk)) == !r.Dropped {
					c.RunsRight++
				}
			}
		}
		v.Checks = append(v.Checks, c)
		// A closed loop's rows each run at their own rate: no boundary.
		if g := (group{o.Key, o.Workload, o.Rate}); ok && o.Rate != "max" && !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		m, _ := Find(models, g.Key)
		b := Boundary{Key: g.Key, Workload: g.workload, Rate: g.rate}
		var rows []Observation
		var rates []float64
		for _, o := range held {
			if o.Key == g.Key && o.Workload == g.workload && o.Rate == g.rate {
				rows = append(rows, o)
				rates = append(rates, o.PerCPURate)
			}
		}
		slices.SortFunc(rows, func(a, b Observation) int { return cmp.Compare(a.PerCPUBytes, b.PerCPUBytes) })
		b.PerCPURate = Median(rates)
		at := rows[len(rows)-1]
		for _, o := range rows {
			if o.NoDrops {
				b.NoDrops, at = o.PerCPUBytes, o
				break
			}
		}
		for _, o := range rows {
			if !o.NoDrops && o.PerCPUBytes < b.NoDrops {
				b.Lossy = o.PerCPUBytes
			}
		}
		b.Need = m.MinBytes(b.PerCPURate, at.Subbufs, at.Seconds(), RowRisk)
		v.Boundaries = append(v.Boundaries, b)
	}
	return v
}

// Range is what the validation supports for m: the per-CPU rates of the
// rows m was fitted on that kept up and of the held-out open loops that
// dropped nothing where m said they would (a right "lossy" says nothing about
// whether m's size suffices), and how many held-out rows of its key it
// classified right.
func (v Validation) Range(m Model) (lo, hi float64, correct, total int) {
	lo, hi = m.Rates[0], m.Rates[1]
	for _, c := range v.Checks {
		if c.Key != m.Key || !c.HasModel {
			continue
		}
		total++
		if c.Correct() {
			correct++
			// Only open loops: the model is for a set rate, and a
			// closed loop's rate is whatever the consumer allowed.
			if c.NoDrops && c.Rate != "max" {
				lo, hi = min(lo, c.PerCPURate), max(hi, c.PerCPURate)
			}
		}
	}
	return lo, hi, correct, total
}

// Validated says whether rate is within Range(m), give or take the 10%
// by which an open loop's achieved rate strays from its target.
func (v Validation) Validated(m Model, rate float64) bool {
	lo, hi, _, _ := v.Range(m)
	return rate >= lo/1.1 && rate <= hi*1.1
}
