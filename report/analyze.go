package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/internal/size"
)

// Paths are the capture paths the report sizes, in report order (the
// transports of bench.BenchmarkCapture; none and empty-* are floors).
var Paths = []string{"relay", "ringbuf", "perfbuf", "perf-record"}

// Floors are the paths without a transport: the workload alone and empty
// probes.
var Floors = []string{"none", "empty-bpf", "empty-kmod"}

// Metric units of the capture rows.
const (
	UnitLost     = "lost-%"
	UnitOverhead = "overhead-ns/event"
	UnitConsumer = "consumer-ns/event"
	UnitBuffer   = "buffer-B"
	UnitBacklog  = "max-backlog"
)

// HeadlineAttach and HeadlineWakeup select the headline rows.
const (
	HeadlineRate   = "max"
	HeadlineAttach = "tracepoint"
	HeadlineWakeup = "every"
)

// Variant is a path with its attach mode and ring buffer wakeup (empty
// where the path has none).
type Variant struct{ Path, Attach, Wakeup string }

func (v Variant) String() string {
	s := v.Path
	if v.Attach != "" {
		s += " " + v.Attach
	}
	if v.Wakeup != "" {
		s += ", wakeup=" + v.Wakeup
	}
	return s
}

func variantOf(r *Row) Variant {
	return Variant{Path: r.Keys["path"], Attach: r.Keys["attach"], Wakeup: r.Keys["wakeup"]}
}

// Workloads lists the workloads of the capture rows, in file order.
func (s *Section) Workloads() []string {
	var out []string
	for _, r := range s.Rows {
		if w := r.Keys["workload"]; r.Bench == "Capture" && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// captureRows returns the capture rows of a workload and rate, in the
// plan's first placement (rows from before placements were keys count as
// that one). The other placements are in the benchstat tables.
func (s *Section) captureRows(workload, rate string) []*Row {
	var out []*Row
	main := "producers=2/consumer=shared"
	if p, ok := s.plan(); ok {
		main = p.Placements[0].Name()
	}
	for _, r := range s.Rows {
		placed := r.Keys["producers"] == "" || "producers="+r.Keys["producers"]+"/consumer="+r.Keys["consumer"] == main
		if r.Bench == "Capture" && placed && r.Keys["workload"] == workload && r.Keys["rate"] == rate {
			out = append(out, r)
		}
	}
	return out
}

// plan returns the benchmark matrix the file's bench-level config line
// names, when it is one the bench package knows.
func (s *Section) plan() (plan.Plan, bool) {
	lvl := s.ConfigValue("bench-level")
	if lvl == "" {
		return plan.Plan{}, false
	}
	p, err := plan.For(lvl)
	return p, err == nil
}

// Rates lists the rates of a workload's capture rows and the rates the
// bench-level plans: max first, then ascending.
func (s *Section) Rates(workload string) []string {
	var out []string
	for _, r := range s.Rows {
		if r.Bench == "Capture" && r.Keys["workload"] == workload && !slices.Contains(out, r.Keys["rate"]) {
			out = append(out, r.Keys["rate"])
		}
	}
	if p, ok := s.plan(); ok {
		for _, rate := range p.RatesOf(workload) {
			if n := plan.RateName(rate); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.SortStableFunc(out, compareRates)
	return out
}

func compareRates(a, b string) int {
	if a == b {
		return 0
	}
	if a == "max" {
		return -1
	}
	if b == "max" {
		return 1
	}
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		return cmp.Compare(fa, fb)
	}
	return cmp.Compare(a, b)
}

// SkippedRow is a planned row the benchmark skipped: its geometry, the
// reason it gave (the first run's) and in how many runs.
type SkippedRow struct {
	Geometry string
	Reason   string
	Runs     int
}

// skippedRow looks for the reason a planned row of the first placement
// is absent; false when the benchmark gave none.
func (s *Section) skippedRow(workload, rate string, v Variant, geometry string, p plan.Plan) (SkippedRow, bool) {
	name := fmt.Sprintf("BenchmarkCapture/workload=%s/rate=%s/%s/path=%s", workload, rate, p.Placements[0].Name(), v.Path)
	if v.Attach != "" {
		name += "/attach=" + v.Attach
	}
	if v.Wakeup != "" {
		name += "/wakeup=" + v.Wakeup
	}
	reasons := s.Skipped[name+"/"+geometry]
	if len(reasons) == 0 {
		return SkippedRow{}, false
	}
	return SkippedRow{Geometry: geometry, Reason: reasons[0], Runs: len(reasons)}, true
}

// plannedVariants are the capture variants the bench-level runs at a rate
// (every attach mode and perf record in the closed loop only).
func plannedVariants(p plan.Plan, rate string) []Variant {
	var out []Variant
	for _, path := range Paths {
		switch path {
		case "ringbuf", "perfbuf":
			for _, a := range p.AttachesUsed(0, rateValue(rate)) {
				for _, w := range p.Wakeups {
					out = append(out, Variant{path, string(a), w})
				}
			}
		case "perf-record":
			if rate == HeadlineRate && p.PerfRecordGeometries > 0 {
				out = append(out, Variant{Path: path})
			}
		default:
			if p.Runs(path) {
				out = append(out, Variant{Path: path})
			}
		}
	}
	return out
}

// rateValue is the ops/s of a rate key (0 for max).
func rateValue(rate string) float64 {
	v, _ := strconv.ParseFloat(rate, 64)
	return v
}

// plannedGeometries are the subbuf=…/n=… name parts the bench-level runs
// at a rate for an attach mode ("" for the paths without one), in the
// first placement.
func plannedGeometries(p plan.Plan, rate, attach string) []string {
	geoms := p.GeometriesAt(0, rateValue(rate))
	if rate == HeadlineRate {
		geoms = p.Geometries
		if attach != "" && attach != string(p.Attaches[0]) {
			geoms = p.AttachGeometries
		}
	}
	var out []string
	for _, g := range geoms {
		out = append(out, geometryName(g.SubbufSize, g.NumSubbufs))
	}
	return out
}

// geomLabelOf turns a subbuf=…/n=… name part into 16KiB×4.
func geomLabelOf(g string) string {
	return strings.NewReplacer("subbuf=", "", "/n=", "×").Replace(g)
}

func geometryName(subbuf, n int) string {
	return fmt.Sprintf("subbuf=%s/n=%d", size.Format(subbuf), n)
}

func rowGeometryName(r *Row) string {
	return "subbuf=" + r.Keys["subbuf"] + "/n=" + r.Keys["n"]
}

// runs says "1 run" or "N runs".
func runs(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

// configReason returns the config line that says why path has no rows
// (key "" when there is none).
func (s *Section) configReason(path string) (key, value string) {
	key = path
	if path == "empty-kmod" {
		key = "relay" // the empty module is skipped with the relay path
	}
	if v := s.ConfigValue(key); v != "" {
		return key, v
	}
	return "", ""
}

// MissingReason says why a path has no rows: the file's config line named
// after the path (e.g. "relay: rows skipped here: …") when there is one.
func (s *Section) MissingReason(path string) string {
	if key, v := s.configReason(path); key != "" {
		return fmt.Sprintf("config line `%s: %s`", key, v)
	}
	if p, ok := s.plan(); ok && !p.Runs(path) {
		return fmt.Sprintf("bench-level %s does not run it (bench/plan): %s", p.Level, p.Omitted[path])
	}
	if p, ok := s.plan(); ok {
		return fmt.Sprintf("no config line gives a reason; bench-level %s runs these rows, so the file may be partial", p.Level)
	}
	return "no config line gives a reason"
}

// Missing is a path or row set the data lacks, and why.
type Missing struct {
	What   string
	Reason string
}

// Headline is the closed loop with tracepoint attachment and the ring
// buffer woken for every record.
type Headline struct {
	Workload string
	Rows     []*Row // by per-CPU memory, sub-buffer size, then path
	Floor    []*Row // path=none and the empty probes
	Missing  []Missing
}

func headlineRow(r *Row) bool {
	a, w := r.Keys["attach"], r.Keys["wakeup"]
	return slices.Contains(Paths, r.Keys["path"]) && (a == "" || a == HeadlineAttach) && (w == "" || w == HeadlineWakeup)
}

// Headline returns the headline rows of a workload.
func (s *Section) Headline(workload string) Headline {
	h := Headline{Workload: workload}
	rows := s.captureRows(workload, HeadlineRate)
	for _, r := range rows {
		switch {
		case slices.Contains(Floors, r.Keys["path"]):
			h.Floor = append(h.Floor, r)
		case headlineRow(r):
			h.Rows = append(h.Rows, r)
		}
	}
	slices.SortStableFunc(h.Rows, func(a, b *Row) int {
		return cmp.Or(byMemory(a, b), cmp.Compare(pathRank(a.Keys["path"]), pathRank(b.Keys["path"])))
	})
	slices.SortStableFunc(h.Floor, func(a, b *Row) int {
		return cmp.Compare(slices.Index(Floors, a.Keys["path"]), slices.Index(Floors, b.Keys["path"]))
	})
	has := func(path string, rows []*Row) bool {
		return slices.ContainsFunc(rows, func(r *Row) bool { return r.Keys["path"] == path })
	}
	for _, p := range Paths {
		if !has(p, h.Rows) {
			h.Missing = append(h.Missing, Missing{"path=" + p, s.MissingReason(p)})
		}
	}
	for _, p := range Floors {
		if !has(p, h.Floor) {
			h.Missing = append(h.Missing, Missing{"path=" + p, s.MissingReason(p)})
		}
	}
	return h
}

func pathRank(p string) int {
	if i := slices.Index(Paths, p); i >= 0 {
		return i
	}
	return len(Paths)
}

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
	// RunnerUp is the cheapest such row of another variant.
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

	// Variants: those in the file, then any the plan runs and the file
	// lacks, grouped by path in report order.
	var variants []Variant
	for _, r := range capture {
		if v := variantOf(r); !slices.Contains(variants, v) {
			variants = append(variants, v)
		}
	}
	if planned {
		for _, v := range plannedVariants(plan, rate) {
			if !slices.Contains(variants, v) {
				variants = append(variants, v)
			}
		}
	}
	for _, p := range Paths {
		if planned && !slices.ContainsFunc(plannedVariants(plan, rate), func(v Variant) bool { return v.Path == p }) {
			continue // the bench-level does not run it at this rate
		}
		if !slices.ContainsFunc(variants, func(v Variant) bool { return v.Path == p }) {
			variants = append(variants, Variant{Path: p})
		}
	}
	slices.SortStableFunc(variants, func(a, b Variant) int {
		return cmp.Compare(pathRank(a.Path), pathRank(b.Path))
	})

	order := lossOrder(rs.CostUnit)
	for _, v := range variants {
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
			rs.Sizings = append(rs.Sizings, sz)
			continue
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
		rs.Sizings = append(rs.Sizings, sz)
	}

	// What to pick: the least zero-loss memory over the variants, and the
	// cheapest loss-free row.
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
			if variantOf(r) != variantOf(rs.Cheapest) && r.Metric(rs.CostUnit) != nil {
				rs.RunnerUp = r
				break
			}
		}
	}
	return rs
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

// Consumers returns the BenchmarkConsumer rows in file order and the copy
// floor (reader=copy) when present.
func (s *Section) Consumers() (rows []*Row, floor *Row) {
	for _, r := range s.Rows {
		if r.Bench == "Consumer" {
			rows = append(rows, r)
			if r.Keys["reader"] == "copy" {
				floor = r
			}
		}
	}
	return rows, floor
}

// ConsumerNsPerEvent is the reader's cost per record: the ns/event metric
// when the row has it, else ns/op (one op is one record read).
func ConsumerNsPerEvent(r *Row) *Metric {
	if m := r.Metric("ns/event"); m != nil {
		return m
	}
	return r.Metric("ns/op")
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

// LossSeries returns, per workload and headline variant (tracepoint attach,
// both reader wakeups of the ring and perf buffers), the median lost-% of the geometry that lost
// least at each per-CPU memory in the closed loop.
func (s *Section) LossSeries() []Series {
	var out []Series
	for _, wl := range s.Workloads() {
		rs := s.Sizing(wl, HeadlineRate)
		order := lossOrder(rs.CostUnit)
		for _, sz := range rs.Sizings {
			if a := sz.Variant.Attach; len(sz.Rows) == 0 || (a != "" && a != HeadlineAttach) {
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

// byMemory orders rows by per-CPU memory, then by sub-buffer size.
func byMemory(a, b *Row) int {
	ma, _ := a.PerCPUBytes()
	mb, _ := b.PerCPUBytes()
	sa, _, _ := a.Geometry()
	sb, _, _ := b.Geometry()
	return cmp.Or(cmp.Compare(ma, mb), cmp.Compare(sa, sb))
}
