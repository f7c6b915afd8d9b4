package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/internal/bytesize"
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

// HeadlineRate and HeadlineWakeup, with the file's attach mode
// (Section.Attach), select the headline rows.
const (
	HeadlineRate   = "max"
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
	return fmt.Sprintf("subbuf=%s/n=%d", bytesize.Format(subbuf), n)
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

// Headline is the closed loop with the file's attach mode and the ring
// buffer woken for every record.
type Headline struct {
	Workload string
	Rows     []*Row // by per-CPU memory, sub-buffer size, then path
	Floor    []*Row // path=none and the empty probes
	Missing  []Missing
}

func (s *Section) headlineRow(r *Row) bool {
	a, w := r.Keys["attach"], r.Keys["wakeup"]
	return slices.Contains(Paths, r.Keys["path"]) && (a == "" || a == s.Attach) && (w == "" || w == HeadlineWakeup)
}

// Headline returns the headline rows of a workload.
func (s *Section) Headline(workload string) Headline {
	h := Headline{Workload: workload}
	rows := s.captureRows(workload, HeadlineRate)
	for _, r := range rows {
		switch {
		case slices.Contains(Floors, r.Keys["path"]):
			h.Floor = append(h.Floor, r)
		case s.headlineRow(r):
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

// byMemory orders rows by per-CPU memory, then by sub-buffer size.
func byMemory(a, b *Row) int {
	ma, _ := a.PerCPUBytes()
	mb, _ := b.PerCPUBytes()
	sa, _, _ := a.Geometry()
	sb, _, _ := b.Geometry()
	return cmp.Or(cmp.Compare(ma, mb), cmp.Compare(sa, sb))
}
