package report

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/slabbench/slabbench/bench/plan"
)

// Sizing is one variant at one rate: the smallest per-CPU memory that lost
// nothing, and which sub-buffer count lost least there.
type Sizing struct {
	Variant Variant
	Rows    []*Row // the variant's rows, by per-CPU memory then sub-buffer size
	// Missing says why there are no rows ("" when there are).
	Missing string
	// NotRun lists the geometries the bench-level runs that the file lacks
	// without a reason; Skipped those the benchmark skipped, with its
	// reason.
	NotRun  []string
	Skipped []SkippedRow
	// ZeroLossBytes is the smallest per-CPU memory (subbuf × n) at which
	// a geometry reported lost-% = 0 in every run; 0 when none did.
	ZeroLossBytes int
	// AtMemory holds the rows at ZeroLossBytes, least loss first; when
	// nothing was loss-free, the rows at the memory of Pick.
	AtMemory []*Row
	// Pick is the row that lost least at that memory; when nothing was
	// loss-free, the row with the least median lost-% of all.
	Pick *Row
}

// RateSizing is the sizing of every variant at one rate, and what the data
// says to pick.
type RateSizing struct {
	Workload, Rate string
	Sizings        []Sizing
	// Missing says why the rate has no capture rows at all ("" when it
	// has some).
	Missing string
	// LeastMemory are the variants whose zero-loss memory is the smallest
	// of all (several when tied).
	LeastMemory []Sizing
	// CostUnit is the per-event cost compared: overhead-ns/event where
	// the rows have it (closed loop), else consumer-ns/event.
	CostUnit string
	// Cheapest is the zero-loss row (any variant, any memory) with the
	// least median cost, or, when nothing was loss-free, the cheapest row;
	// RunnerUp is the cheapest such row of another variant at the same
	// per-CPU memory, placement and loss class, its achieved events/s
	// within SameRate of Cheapest's (nil when none: nothing to compare).
	Cheapest, RunnerUp *Row
}

// lossOrder sorts rows by: loss-free in every run first, then median and
// max lost-%, then the median per-event cost, then the smaller sub-buffer.
func lossOrder(costUnit string) func(a, b *Row) int {
	return func(a, b *Row) int {
		za, zb := a.ZeroLoss(), b.ZeroLoss()
		if za != zb {
			if za {
				return -1
			}
			return 1
		}
		la, lb := a.Metric(UnitLost), b.Metric(UnitLost)
		if (la == nil) != (lb == nil) {
			if la == nil {
				return 1
			}
			return -1
		}
		if la != nil {
			if c := cmp.Or(cmp.Compare(la.Median, lb.Median), cmp.Compare(la.Max, lb.Max)); c != 0 {
				return c
			}
		}
		ca, oka := a.Median(costUnit)
		cb, okb := b.Median(costUnit)
		if oka && okb {
			if c := cmp.Compare(ca, cb); c != 0 {
				return c
			}
		}
		sa, _, _ := a.Geometry()
		sb, _, _ := b.Geometry()
		return cmp.Compare(sa, sb)
	}
}

// costUnitOf is overhead-ns/event when any row has it, else
// consumer-ns/event.
func costUnitOf(rows []*Row) string {
	for _, r := range rows {
		if r.Metric(UnitOverhead) != nil {
			return UnitOverhead
		}
	}
	return UnitConsumer
}

// Sizing returns the sizing of every variant of a workload at a rate.
func (s *Section) Sizing(workload, rate string) RateSizing {
	rs := RateSizing{Workload: workload, Rate: rate}
	rows := s.captureRows(workload, rate)
	plan, planned := s.plan()
	if len(rows) == 0 {
		rs.Missing = "no BenchmarkCapture rows at this rate in the file"
		if planned {
			rs.Missing += fmt.Sprintf(" (bench-level %s runs them, so the file may be partial)", plan.Level)
		}
		return rs
	}
	var capture []*Row
	for _, r := range rows {
		if slices.Contains(Paths, r.Keys["path"]) {
			capture = append(capture, r)
		}
	}
	rs.CostUnit = costUnitOf(capture)
	for _, v := range variantsAt(capture, plan, planned, rate) {
		rs.Sizings = append(rs.Sizings, s.sizeVariant(v, capture, workload, rate, rs.CostUnit))
	}
	rs.pick(capture)
	return rs
}

// variantsAt are the variants of a rate's rows, then any the plan runs
// and the file lacks, grouped by path in report order.
func variantsAt(capture []*Row, p plan.Plan, planned bool, rate string) []Variant {
	var variants []Variant
	for _, r := range capture {
		if v := variantOf(r); !slices.Contains(variants, v) {
			variants = append(variants, v)
		}
	}
	if planned {
		for _, v := range plannedVariants(p, rate) {
			if !slices.Contains(variants, v) {
				variants = append(variants, v)
			}
		}
	}
	for _, path := range Paths {
		if planned && !slices.ContainsFunc(plannedVariants(p, rate), func(v Variant) bool { return v.Path == path }) {
			continue // the bench-level does not run it at this rate
		}
		if !slices.ContainsFunc(variants, func(v Variant) bool { return v.Path == path }) {
			variants = append(variants, Variant{Path: path})
		}
	}
	slices.SortStableFunc(variants, func(a, b Variant) int {
		return cmp.Compare(pathRank(a.Path), pathRank(b.Path))
	})
	return variants
}

// sizeVariant is one variant's sizing at a rate: its rows by memory, the
// least memory that lost nothing (or the row that lost least), and the
// planned rows the file lacks, skipped or not run.
func (s *Section) sizeVariant(v Variant, capture []*Row, workload, rate, costUnit string) Sizing {
	plan, planned := s.plan()
	sz := Sizing{Variant: v}
	for _, r := range capture {
		if variantOf(r) == v {
			if _, ok := r.PerCPUBytes(); ok {
				sz.Rows = append(sz.Rows, r)
			}
		}
	}
	if len(sz.Rows) == 0 {
		sz.Missing = s.MissingReason(v.Path)
		if key, _ := s.configReason(v.Path); planned && key == "" {
			for _, g := range plannedGeometries(plan, rate, v.Attach) {
				if sk, ok := s.skippedRow(workload, rate, v, g, plan); ok {
					sz.Missing = fmt.Sprintf("skipped by the benchmark at %s in %s: %s", geomLabelOf(g), runs(sk.Runs), sk.Reason)
					break
				}
			}
		}
		return sz
	}
	if planned {
		for i, g := range plannedGeometries(plan, rate, v.Attach) {
			if v.Path == "perf-record" && !plan.PerfRecordRows(rateValue(rate), i) {
				continue
			}
			if slices.ContainsFunc(sz.Rows, func(r *Row) bool { return rowGeometryName(r) == g }) {
				continue
			}
			if sk, ok := s.skippedRow(workload, rate, v, g, plan); ok {
				sz.Skipped = append(sz.Skipped, sk)
			} else {
				sz.NotRun = append(sz.NotRun, g)
			}
		}
	}
	order := lossOrder(costUnit)
	slices.SortStableFunc(sz.Rows, byMemory)
	for _, r := range sz.Rows {
		if r.ZeroLoss() {
			sz.ZeroLossBytes, _ = r.PerCPUBytes()
			break
		}
	}
	if sz.ZeroLossBytes > 0 {
		sz.AtMemory = rowsAt(sz.Rows, sz.ZeroLossBytes)
	} else {
		least := slices.Clone(sz.Rows)
		slices.SortStableFunc(least, order) // ties keep the smaller memory first
		mem, _ := least[0].PerCPUBytes()
		sz.AtMemory = rowsAt(sz.Rows, mem)
	}
	slices.SortStableFunc(sz.AtMemory, order)
	sz.Pick = sz.AtMemory[0]
	return sz
}

// pick sets what the data says to pick: the least zero-loss memory over
// the variants, and the cheapest loss-free row with its runner-up.
func (rs *RateSizing) pick(capture []*Row) {
	least := 0
	for _, sz := range rs.Sizings {
		if sz.ZeroLossBytes > 0 && (least == 0 || sz.ZeroLossBytes < least) {
			least = sz.ZeroLossBytes
		}
	}
	for _, sz := range rs.Sizings {
		if least > 0 && sz.ZeroLossBytes == least {
			rs.LeastMemory = append(rs.LeastMemory, sz)
		}
	}
	var candidates []*Row
	for _, r := range capture {
		if r.ZeroLoss() {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		candidates = capture
	}
	byCost := func(a, b *Row) int {
		ca, oka := a.Median(rs.CostUnit)
		cb, okb := b.Median(rs.CostUnit)
		if oka != okb {
			if oka {
				return -1
			}
			return 1
		}
		return cmp.Compare(ca, cb)
	}
	candidates = slices.Clone(candidates)
	slices.SortStableFunc(candidates, byCost)
	if len(candidates) > 0 && candidates[0].Metric(rs.CostUnit) != nil {
		rs.Cheapest = candidates[0]
		for _, r := range candidates[1:] {
			if variantOf(r) != variantOf(rs.Cheapest) && r.Metric(rs.CostUnit) != nil && sameConditions(r, rs.Cheapest) {
				rs.RunnerUp = r
				break
			}
		}
	}
}

func rowsAt(rows []*Row, perCPU int) []*Row {
	var out []*Row
	for _, r := range rows {
		if m, _ := r.PerCPUBytes(); m == perCPU {
			out = append(out, r)
		}
	}
	return out
}

// Point is one point of a loss curve: the geometry that lost least at a
// per-CPU memory.
type Point struct {
	PerCPUBytes int
	Row         *Row
}

// Series is the loss curve of one variant of a workload.
type Series struct {
	Workload string
	Variant  Variant
	Points   []Point // ascending memory
}

// LossSeries returns, per workload and headline variant (the file's attach mode,
// both reader wakeups of the ring and perf buffers), the median lost-% of the geometry that lost
// least at each per-CPU memory in the closed loop.
func (s *Section) LossSeries() []Series {
	var out []Series
	for _, wl := range s.Workloads() {
		rs := s.Sizing(wl, HeadlineRate)
		order := lossOrder(rs.CostUnit)
		for _, sz := range rs.Sizings {
			if a := sz.Variant.Attach; len(sz.Rows) == 0 || (a != "" && a != s.Attach) {
				continue
			}
			ser := Series{Workload: wl, Variant: sz.Variant}
			for i := 0; i < len(sz.Rows); {
				mem, _ := sz.Rows[i].PerCPUBytes()
				at := rowsAt(sz.Rows, mem)
				i += len(at)
				slices.SortStableFunc(at, order)
				if at[0].Metric(UnitLost) != nil {
					ser.Points = append(ser.Points, Point{mem, at[0]})
				}
			}
			if len(ser.Points) > 0 {
				out = append(out, ser)
			}
		}
	}
	return out
}
