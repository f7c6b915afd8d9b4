package report

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// attachOrder is the order attach modes are listed in (bpftrace.Attach
// values); others follow in file order.
var attachOrder = []string{"tracepoint", "rawtp", "kprobe", "fentry"}

// PrimaryAttach is the attach mode most eBPF capture rows use (ties go
// to the first in attachOrder), "tracepoint" when none has one: the
// mode a file's matrix runs everywhere, the others only at a few rows
// beside it (bench/plan: Attaches[0]).
func PrimaryAttach(rows []*Row) string {
	count := map[string]int{}
	for _, r := range rows {
		if a := r.Keys["attach"]; r.Bench == "Capture" && a != "" {
			count[a]++
		}
	}
	best := attachOrder[0]
	for _, a := range slices.Sorted(maps.Keys(count)) {
		if count[a] > count[best] || count[a] == count[best] && attachRank(a) < attachRank(best) {
			best = a
		}
	}
	return best
}

// Units of the attach comparison.
const (
	UnitProbe       = "probe-ns/event"
	UnitFloor       = "overhead-ns/op"
	UnitDropped     = "dropped-%"
	UnitMissed      = "missed-events"
	UnitLagP99      = "lag-p99-us"
	UnitMaxBacklogB = "max-backlog-B"
)

// AttachComparison is a workload's eBPF rows of every attach mode the
// file has, in the first placement, the reader woken for every record.
type AttachComparison struct {
	Workload string
	Attaches []string // attachOrder first
	Floors   []*Row   // path=empty-bpf, by attach
	// Rows are the ring and perf buffer rows at the rates and geometries
	// where more than one attach mode ran: by rate, memory, path, attach.
	Rows []*Row
}

func attachRank(a string) int {
	if i := slices.Index(attachOrder, a); i >= 0 {
		return i
	}
	return len(attachOrder)
}

// AttachModes returns the attach comparison of a workload.
func (s *Section) AttachModes(workload string) AttachComparison {
	ac := AttachComparison{Workload: workload}
	type point struct{ rate, geom, path string }
	attachesAt := map[point][]string{}
	var rows []*Row
	for _, rate := range s.Rates(workload) {
		for _, r := range s.captureRows(workload, rate) {
			a := r.Keys["attach"]
			if a == "" {
				continue
			}
			if !slices.Contains(ac.Attaches, a) {
				ac.Attaches = append(ac.Attaches, a)
			}
			switch p := r.Keys["path"]; {
			case p == "empty-bpf":
				ac.Floors = append(ac.Floors, r)
			case (p == "ringbuf" || p == "perfbuf") && r.Keys["wakeup"] == HeadlineWakeup:
				pt := point{rate, rowGeometryName(r), p}
				attachesAt[pt] = append(attachesAt[pt], a)
				rows = append(rows, r)
			}
		}
	}
	for _, r := range rows {
		if len(attachesAt[point{r.Keys["rate"], rowGeometryName(r), r.Keys["path"]}]) > 1 {
			ac.Rows = append(ac.Rows, r)
		}
	}
	slices.SortStableFunc(ac.Attaches, func(a, b string) int { return cmp.Compare(attachRank(a), attachRank(b)) })
	byAttach := func(a, b *Row) int { return cmp.Compare(attachRank(a.Keys["attach"]), attachRank(b.Keys["attach"])) }
	slices.SortStableFunc(ac.Floors, byAttach)
	slices.SortStableFunc(ac.Rows, func(a, b *Row) int {
		return cmp.Or(compareRates(a.Keys["rate"], b.Keys["rate"]), byMemory(a, b),
			cmp.Compare(pathRank(a.Keys["path"]), pathRank(b.Keys["path"])), byAttach(a, b))
	})
	return ac
}

// Ordering lists rows least first by a metric's median: "a 1 [..] < b 2
// [..]" where adjacent ranges do not overlap, "≈" where they do; rows are
// named by their attach mode.
func Ordering(rows []*Row, unit string) string {
	return orderingBy(rows, unit, func(r *Row) string { return r.Keys["attach"] })
}

func orderingBy(rows []*Row, unit string, label func(*Row) string) string {
	var have []*Row
	for _, r := range rows {
		if r.Metric(unit) != nil {
			have = append(have, r)
		}
	}
	slices.SortStableFunc(have, func(a, b *Row) int { return cmp.Compare(a.Metric(unit).Median, b.Metric(unit).Median) })
	var sb strings.Builder
	for i, r := range have {
		if i > 0 {
			if have[i-1].Metric(unit).Max < r.Metric(unit).Min {
				sb.WriteString(" < ")
			} else {
				sb.WriteString(" ≈ ")
			}
		}
		fmt.Fprintf(&sb, "%s %s", label(r), cell(r.Metric(unit), r.Runs))
	}
	return sb.String()
}

func writeAttachModes(b *bytes.Buffer, s *Section, ac AttachComparison) {
	if len(ac.Attaches) < 2 {
		return
	}
	fmt.Fprintf(b, "### Attach modes: workload=%s\n\n", ac.Workload)
	fmt.Fprintf(b, "Source: `%s`, rows `BenchmarkCapture/workload=%s/…/path=empty-bpf|ringbuf|perfbuf/attach=…` of the first placement, "+
		"the reader woken for every record. Cells: median [min–max] over n runs. probe-ns/event is the time inside the programs per run, "+
		"measured by the kernel (config line `probe:`); `<` between two modes means their ranges do not overlap, `≈` that they do "+
		"(no difference measured). A tracepoint program's probe-ns/event leaves out the perf tracepoint handler that runs "+
		"before it and copies the event's fields (`perf_trace_*`); the workload's slowdown (overhead-ns/op) includes it.\n\n", s.File, ac.Workload)
	if len(ac.Floors) > 0 {
		fmt.Fprintf(b, "Floors (programs that return at once, closed loop): probe-ns/event %s; overhead-ns/op %s.\n\n",
			Ordering(ac.Floors, UnitProbe), Ordering(ac.Floors, UnitFloor))
	}
	if len(ac.Rows) == 0 {
		fmt.Fprintf(b, "No capture rows with more than one attach mode at the same rate and geometry.\n\n")
		return
	}
	floor := map[string]float64{}
	for _, r := range ac.Floors {
		if m := r.Metric(UnitProbe); m != nil {
			floor[r.Keys["attach"]] = m.Median
		}
	}
	fmt.Fprintf(b, "The record's own cost is probe-ns/event minus the empty probe's median of the same attach mode. "+
		"lost-%% = dropped-%% (buffer full) + missed (probe not run; missed-events is a count per run).\n\n")
	fmt.Fprintf(b, "| rate | subbuf × n | path | attach | %s | minus empty | %s | lost-%% | %s | %s | %s | %s | n |\n",
		UnitProbe, UnitOverhead, UnitDropped, UnitMissed, UnitConsumer, UnitLagP99)
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ac.Rows {
		own := "—"
		if f, ok := floor[r.Keys["attach"]]; ok && r.Metric(UnitProbe) != nil {
			own = num(r.Metric(UnitProbe).Median - f)
		}
		overhead := "(open loop)"
		if r.Keys["rate"] == HeadlineRate {
			overhead = cell(r.Metric(UnitOverhead), r.Runs)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.Keys["rate"], geomLabel(r),
			r.Keys["path"], r.Keys["attach"], cell(r.Metric(UnitProbe), r.Runs), own, overhead, cell(r.Metric(UnitLost), r.Runs),
			cell(r.Metric(UnitDropped), r.Runs), cell(r.Metric(UnitMissed), r.Runs), cell(r.Metric(UnitConsumer), r.Runs),
			cell(r.Metric(UnitLagP99), r.Runs), r.Runs)
	}
	fmt.Fprintln(b)
}
