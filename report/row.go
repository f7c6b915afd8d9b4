package report

import (
	"fmt"
	"math"
	"strconv"

	"golang.org/x/perf/benchmath"

	"github.com/slabbench/slabbench/internal/bytesize"
)

// Row is one benchmark (one full name) with all its runs.
type Row struct {
	Bench string            // the base name without "Benchmark": Capture, Consumer
	Name  string            // the full name without the -GOMAXPROCS suffix
	Procs string            // the GOMAXPROCS suffix, e.g. "2", or ""
	Keys  map[string]string // the name's key=value parts
	Runs  int               // result lines read for this name
	Line  int               // the line of its first result in the file

	metrics map[string]*Metric
	units   []string
	lines   []map[string]float64 // each run's values by unit, in file order
}

// Metric is one unit's values over a row's runs and their summary.
type Metric struct {
	Unit   string    // as written in the file (ns/op, lost-%, ...)
	Values []float64 // one per run that reported the unit, ascending
	Median float64
	Min    float64
	Max    float64
	// CI is benchmath's distribution-free confidence interval of the
	// median at level Confidence (±Inf when there are too few runs).
	CI benchmath.Summary
}

// N is the number of runs that reported the metric.
func (m *Metric) N() int { return len(m.Values) }

// Metric returns the named metric (unit as written in the file), or nil.
func (r *Row) Metric(unit string) *Metric { return r.metrics[unit] }

// Median returns the median of a metric and whether the row has it.
func (r *Row) Median(unit string) (float64, bool) {
	if m := r.metrics[unit]; m != nil {
		return m.Median, true
	}
	return 0, false
}

// PerCPUBytes is the row's buffer memory per CPU, subbuf × n, from its
// name keys.
func (r *Row) PerCPUBytes() (int, bool) {
	sb, n, ok := r.Geometry()
	return sb * n, ok
}

// Geometry returns the sub-buffer size and count from the name keys.
func (r *Row) Geometry() (subbuf, n int, ok bool) {
	s, ok1 := r.Keys["subbuf"]
	c, ok2 := r.Keys["n"]
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	sb, err := bytesize.Parse(s)
	if err != nil {
		return 0, 0, false
	}
	cnt, err := strconv.Atoi(c)
	if err != nil || sb <= 0 || cnt <= 0 {
		return 0, 0, false
	}
	return sb, cnt, true
}

// ZeroLoss reports whether every run of the row reported lost-% and every
// one was 0.
func (r *Row) ZeroLoss() bool {
	m := r.metrics["lost-%"]
	if m == nil || m.N() != r.Runs {
		return false
	}
	return m.Max == 0 && m.Min == 0
}

// Iterations is what PerRun calls a run's iteration count (b.N).
const Iterations = "iterations"

// PerRun returns, for each run that reported every one of units, its
// values in the order of units: a Metric's Values are sorted, so they do
// not pair one run's metrics.
func (r *Row) PerRun(units ...string) [][]float64 {
	var runs [][]float64
	for _, line := range r.lines {
		vals := make([]float64, len(units))
		ok := true
		for i, u := range units {
			vals[i], ok = line[u]
			if !ok {
				break
			}
		}
		if ok {
			runs = append(runs, vals)
		}
	}
	return runs
}

func (r *Row) summarise() {
	for _, m := range r.metrics {
		m.summarise()
	}
}

// summarise sorts the values and sets the median, its confidence
// interval (benchmath's) and the range.
func (m *Metric) summarise() {
	m.Values = benchmath.NewSample(m.Values, &benchmath.DefaultThresholds).Values
	m.Min, m.Max = m.Values[0], m.Values[len(m.Values)-1]
	m.CI = benchmath.AssumeNothing.Summary(&benchmath.Sample{Values: m.Values}, Confidence)
	m.Median = m.CI.Center
}

// CIFor describes what benchmath's distribution-free 95% confidence
// interval of the median is for n runs: which order statistics bound it
// and its actual confidence level, or that it is not finite.
func CIFor(n int) string {
	if n < 1 {
		return "no runs"
	}
	ranks := make([]float64, n)
	for i := range ranks {
		ranks[i] = float64(i + 1)
	}
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(ranks, &benchmath.DefaultThresholds), Confidence)
	if math.IsInf(s.Lo, 0) || math.IsInf(s.Hi, 0) {
		msg := "not finite"
		if len(s.Warnings) > 0 {
			msg += " (" + s.Warnings[0].Error() + ")"
		}
		return msg
	}
	span := fmt.Sprintf("from the %s to the %s smallest run", ordinal(int(s.Lo)), ordinal(int(s.Hi)))
	if int(s.Lo) == 1 && int(s.Hi) == n {
		span += ", i.e. exactly the min–max range shown"
	}
	return fmt.Sprintf("%s (actual confidence %.1f%%)", span, 100*s.Confidence)
}

func ordinal(i int) string {
	suffix := "th"
	switch {
	case i%100 >= 11 && i%100 <= 13:
	case i%10 == 1:
		suffix = "st"
	case i%10 == 2:
		suffix = "nd"
	case i%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", i, suffix)
}

// String is the row's benchmark name.
func (r *Row) String() string { return r.Name }
