// Package plan is the benchmark matrix: which workloads, rates, buffer
// geometries, attach modes and wakeups each BENCH level runs. The
// benchmarks (bench/) run it and the report (report/) reads results
// against it, so neither depends on the other.
package plan

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/event"
)

// Geometry is a buffer configuration: NumSubbufs sub-buffers of
// SubbufSize bytes per CPU (and the equal-memory ring buffer).
type Geometry struct {
	SubbufSize int
	NumSubbufs int
}

// Placement is where the workload and the consumer run: Producers
// workload threads (one per CPU) and the consumer on a CPU of its own
// (Pinned: the workload on the other CPUs) or sharing them.
type Placement struct {
	Producers int
	Pinned    bool
}

// Name is the placement's part of a row name.
func (p Placement) Name() string {
	c := "shared"
	if p.Pinned {
		c = "pinned"
	}
	return fmt.Sprintf("producers=%d/consumer=%s", p.Producers, c)
}

// Plan is the benchmark matrix of one level.
type Plan struct {
	Level string
	// Workloads: the first runs every row; the others only the open
	// loops at their OpenLoopRates (or every row when they have none).
	Workloads     []string
	OpenLoopRates map[string][]float64
	// Placements: the first runs every rate and geometry; the others the
	// closed loop at PlacementGeometries, and a pinned one also the open
	// loops at PinnedRates (so that the sizing model sees a pinned
	// consumer's lag).
	Placements          []Placement
	PlacementGeometries []Geometry
	PinnedRates         []float64
	// Rates in ops/s over all threads; 0 is the closed loop (rate=max).
	Rates []float64
	// Geometries for the closed loop; RateGeometries for the open loops,
	// unless RateGrids has the rate: per-CPU memory in ×2 steps around
	// the paths' loss boundaries at that rate (the sizing model's data).
	Geometries     []Geometry
	RateGeometries []Geometry
	RateGrids      map[float64][]Geometry
	// Attaches: the first at every geometry, the others at
	// AttachGeometries of the first placement's closed loop and at
	// AttachRates (open loops, RateGeometries).
	Attaches         []event.Attach
	AttachGeometries []Geometry
	AttachRates      []float64
	// Omitted names the paths the level runs no rows of (relay,
	// empty-kmod, perf-record; consumers: BenchmarkConsumer), with the
	// reason the report gives.
	Omitted map[string]string
	// Wakeups of the ringbuf and perfbuf readers: "every" record (the
	// ring buffer's default; a perf buffer woken for every event) and
	// "batched" (wake the reader once a sub-buffer's worth of bytes is
	// pending, as relay does when a sub-buffer is finished).
	Wakeups []string
	// PerfRecordGeometries limits the perf-record rows to the first this
	// many geometries of the closed loop (0: none).
	PerfRecordGeometries int
	// LongBytes: rows with at least this much memory per CPU form the
	// long group (BENCH_GROUP=long), which scripts/bench.sh runs with a
	// longer -benchtime so that they write 20 times their buffer.
	LongBytes int
	// LongAt: an open loop's long group at a rate that writes its
	// buffer more slowly than the closed loop: rows with at least this
	// much memory per CPU at that rate.
	LongAt map[float64]int
	// Soak: open loops of the first placement at these rates and
	// geometries (beside RateGrids), large enough to seldom drop. They
	// form the soak group (BENCH_GROUP=soak), which scripts/bench.sh runs
	// with a longer -benchtime: the consumer's rare long absences, which
	// a long capture meets and a 1 s run seldom does.
	Soak map[float64][]Geometry
	// HeldOut: open loops of the first workload and placement at these
	// rates and geometries, held out of the sizing model's fit and
	// scored against it (sizing.Split). Declared here before they were
	// first measured, at rates no earlier results file has; runs long
	// enough to meet the host's bursts several times (the heldout group,
	// BENCH_GROUP=heldout, with its own -benchtime in scripts/bench.sh).
	// HeldOutWakeups are their eBPF rows' wakeups (relay has none).
	HeldOut        map[float64][]Geometry
	HeldOutWakeups []string
	// PartsProducers: the producer counts BenchmarkProbeParts runs its
	// rows with (none: the level has no part rows). PartsGeometry is its
	// capture rows' buffer: small enough to be written 20 times in a
	// second with a wakeup for every record (the steady rule).
	PartsProducers []int
	PartsGeometry  Geometry
	// Group is BENCH_GROUP: short, long, soak, heldout, or all rows ("").
	Group string
	// SteadyFactor: a capture row reports only if it wrote at least this
	// many times its buffer (0: no check, for the smoke level's one op).
	SteadyFactor float64
}

// Runs says whether the level runs rows of path at all.
func (p Plan) Runs(path string) bool {
	_, omitted := p.Omitted[path]
	return !omitted
}

// PerfRecordRows says whether geometry i of a rate gets a perf-record row.
func (p Plan) PerfRecordRows(rate float64, i int) bool {
	return rate == 0 && i < p.PerfRecordGeometries
}

// GroupOf is the group of rows with g at rate: soak, long or short (rows
// without a buffer, g zero, are short).
func (p Plan) GroupOf(rate float64, g Geometry) string {
	switch {
	case p.IsHeldOut(rate):
		return "heldout"
	case rate > 0 && slices.Contains(p.Soak[rate], g):
		return "soak"
	case p.LongAt[rate] > 0 && g.SubbufSize*g.NumSubbufs >= p.LongAt[rate]:
		return "long"
	case p.LongBytes > 0 && g.SubbufSize*g.NumSubbufs >= p.LongBytes:
		return "long"
	}
	return "short"
}

// IsHeldOut says whether the rows at rate are the declared held-out ones.
func (p Plan) IsHeldOut(rate float64) bool {
	_, ok := p.HeldOut[rate]
	return ok && rate > 0
}

// HeldOutLine describes the held-out rows for a results file's
// configuration ("" without any).
func (p Plan) HeldOutLine() string {
	if len(p.HeldOut) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(p.HeldOut)) {
		var sizes []string
		for _, g := range p.HeldOut[r] {
			sizes = append(sizes, fmt.Sprintf("%dKiB", g.SubbufSize*g.NumSubbufs>>10))
		}
		parts = append(parts, fmt.Sprintf("rate=%s at %s per CPU", RateName(r), strings.Join(sizes, ", ")))
	}
	return fmt.Sprintf("the open loops of %s, %s, at %s (wakeup %s; relay where it runs) are held out of the sizing model's fit and scored against it; "+
		"declared in bench/plan before they were first measured; their runs are longer (scripts/bench.sh: BENCH_GROUP=heldout)",
		p.Workloads[0], p.Placements[0].Name(), strings.Join(parts, "; "), strings.Join(p.WakeupsAt(slices.Sorted(maps.Keys(p.HeldOut))[0]), ", "))
}

// WakeupsAt returns the eBPF rows' wakeups at rate.
func (p Plan) WakeupsAt(rate float64) []string {
	if p.IsHeldOut(rate) && p.HeldOutWakeups != nil {
		return p.HeldOutWakeups
	}
	return p.Wakeups
}

// InGroup says whether rows with g at rate run in this invocation's group.
func (p Plan) InGroup(rate float64, g Geometry) bool {
	return p.Group == "" || p.GroupOf(rate, g) == p.Group
}

// HasRows says whether placement pl has rows at rate in this group.
func (p Plan) HasRows(pl int, rate float64) bool {
	geoms := p.GeometriesAt(pl, rate)
	return len(geoms) > 0 && (p.InGroup(rate, Geometry{}) ||
		slices.ContainsFunc(geoms, func(g Geometry) bool { return p.InGroup(rate, g) }))
}

// RateHasRows says whether any placement has rows at rate in this group.
func (p Plan) RateHasRows(rate float64) bool {
	for pl := range p.Placements {
		if p.HasRows(pl, rate) {
			return true
		}
	}
	return false
}

// GeometriesAt returns the geometries of a placement and rate.
func (p Plan) GeometriesAt(pl int, rate float64) []Geometry {
	switch {
	case pl > 0 && rate == 0:
		return p.PlacementGeometries
	case pl > 0 && !(p.Placements[pl].Pinned && slices.Contains(p.PinnedRates, rate)):
		return nil
	case rate == 0:
		return p.Geometries
	case p.IsHeldOut(rate):
		return p.HeldOut[rate]
	}
	g, ok := p.RateGrids[rate]
	if !ok {
		g = p.RateGeometries
	}
	if pl == 0 {
		g = append(slices.Clone(g), p.Soak[rate]...)
	}
	return g
}

// RatesOf returns the rates a workload runs: the first workload's held-out
// rates after the others.
func (p Plan) RatesOf(workload string) []float64 {
	if r, ok := p.OpenLoopRates[workload]; ok && workload != p.Workloads[0] {
		return r
	}
	rates := slices.Clone(p.Rates)
	if workload == p.Workloads[0] {
		for _, r := range slices.Sorted(maps.Keys(p.HeldOut)) {
			if !slices.Contains(rates, r) {
				rates = append(rates, r)
			}
		}
	}
	return rates
}

// AttachesAt returns the attach modes of the first placement's closed
// loop at g and of its AttachRates; every other row attaches the first.
func (p Plan) AttachesAt(pl int, rate float64, g Geometry) []event.Attach {
	if pl == 0 && (rate == 0 && slices.Contains(p.AttachGeometries, g) || slices.Contains(p.AttachRates, rate)) {
		return p.Attaches
	}
	return p.Attaches[:1]
}

// AttachesUsed returns every attach mode placement pl runs at rate: all
// of them in the first placement's closed loop (its empty probes, and
// its capture rows at AttachGeometries) and at AttachRates, else the
// first.
func (p Plan) AttachesUsed(pl int, rate float64) []event.Attach {
	if pl == 0 && (rate == 0 || slices.Contains(p.AttachRates, rate)) {
		return p.Attaches
	}
	return p.Attaches[:1]
}

// Narrow returns p restricted to workloads (comma-separated; "" keeps
// the level's) and one group of rows (short, long or soak; "" keeps every
// row): what scripts/bench.sh passes as BENCH_WORKLOADS and BENCH_GROUP.
// The report reads the level's whole plan, whatever the shell says.
func (p Plan) Narrow(workloads, group string) (Plan, error) {
	if workloads != "" {
		p.Workloads = strings.FieldsFunc(workloads, func(r rune) bool { return r == ',' })
	}
	switch group {
	case "", "short", "long", "soak", "heldout":
		p.Group = group
	default:
		return p, fmt.Errorf("BENCH_GROUP=%q: use short, long, soak, heldout, or nothing for every row", group)
	}
	return p, nil
}

// CaptureRows counts the leaf benchmarks of BenchmarkCapture in this
// group, for the progress estimate.
func (p Plan) CaptureRows() int {
	rows := 0
	for _, wl := range p.Workloads {
		rows += p.workloadRows(wl)
	}
	return rows
}

func (p Plan) workloadRows(wl string) int {
	rows := 0
	for pl := range p.Placements {
		for _, rate := range p.RatesOf(wl) {
			geoms := p.GeometriesAt(pl, rate)
			if len(geoms) == 0 {
				continue
			}
			relay := 0
			if p.Runs("relay") {
				relay = 1
			}
			if p.InGroup(rate, Geometry{}) {
				rows++ // path=none
				if rate == 0 {
					rows += relay + len(p.AttachesUsed(pl, rate)) // empty-kmod, empty-bpf
				}
			}
			for i, g := range geoms {
				if !p.InGroup(rate, g) {
					continue
				}
				rows += relay + 2*len(p.AttachesAt(pl, rate, g))*len(p.WakeupsAt(rate)) // relay, ringbuf, perfbuf
				if p.PerfRecordRows(rate, i) && pl == 0 {
					rows++
				}
			}
		}
	}
	return rows
}

// RateName is the rate key's value: max, or ops/s.
func RateName(rate float64) string {
	if rate == 0 {
		return "max"
	}
	return strconv.FormatFloat(rate, 'f', -1, 64)
}

// MaxLatePercent bounds an open-loop run's late-% (ops that started more
// than one interval behind schedule): above it, its arrivals came in
// bursts more than at its rate, so the benchmarks skip the run and the
// report leaves out a row whose median exceeds it.
const MaxLatePercent = 20
