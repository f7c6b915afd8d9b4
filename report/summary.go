package report

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/sizing"
)

// SummaryRate is the rate, events/s per CPU, the summary sizes at.
const SummaryRate = 100e3

// writeSummary writes the report's first screen: which path for which
// need, at what memory and CPU per event, measured where and how, each
// line linking down to its evidence. Every figure comes from the same
// decisions and rankings the sections below print.
func writeSummary(b *bytes.Buffer, sections []*Section, sm SizingModel) {
	fmt.Fprintf(b, "**In short** (medians; each line links to its evidence):\n\n")
	for _, s := range sections {
		wls := s.Workloads()
		if len(wls) == 0 {
			continue
		}
		c, ok := s.comparable(wls[0])
		m := s.Machine()
		where := fmt.Sprintf("%s (%s, %d CPUs, kernel %s, commit %s; eBPF attach %s)", m.Environment, m.CPU, m.CPUs, m.Kernel, m.Commit, s.Attach)
		if ok {
			bound := ", nothing lost"
			if c.Class > 0 {
				most, lossless := 0.0, 0
				for _, r := range c.Rows {
					most = max(most, r.Metric(UnitLost).Median)
					if r.ZeroLoss() {
						lossless++
					}
				}
				bound = fmt.Sprintf(", losing a median of at most %s%% (%d of the %d lost nothing in any run)", num(most), lossless, len(c.Rows))
			}
			if c.LowerBound {
				bound += " as counted: a lower bound on this kernel, where relay's is exact, so relay is not ranked beside them"
			}
			fmt.Fprintf(b, "- %s: **least CPU per event** %s; **lowest lag** %s, at %s events/s per CPU and %s per CPU%s ([Which path](#which-path-for-which-need)).\n",
				where, s.cpuLeaders(c.Rows), leaders(c.Rows, func(r *Row) *Metric { return r.Metric(UnitLagP99) }, "µs p99"),
				RateLabel(c.PerCPURate), bytesize.Format(c.PerCPUBytes), bound)
		}
		if line := summaryMemory(sm, s); line != "" {
			fmt.Fprintf(b, "- %s: %s ([the answer](#the-answer-buffer-memory-per-cpu-for-an-event-rate)).\n", where, line)
		}
	}
	fmt.Fprintf(b, "- Conditions: two producers sharing the CPUs with the consumer, the eBPF attach mode named above, the truth stamp on "+
		"(priced per path under [Which path](#which-path-for-which-need)); VM figures compare paths inside one VM run only. "+
		"On another machine, measure there: `make bench`, then `slabbench size --results results/<file>`.\n\n")
}

// leaders names the rows whose metric ranges overlap the lowest median's
// range: no difference among them was measured.
func leaders(rows []*Row, metric func(*Row) *Metric, unit string) string {
	var have []*Row
	for _, r := range rows {
		if metric(r) != nil {
			have = append(have, r)
		}
	}
	if len(have) == 0 {
		return "—"
	}
	slices.SortStableFunc(have, func(a, b *Row) int { return cmp.Compare(metric(a).Median, metric(b).Median) })
	var names []string
	for _, r := range have {
		if metric(r).Min > metric(have[0]).Max {
			break
		}
		names = append(names, fmt.Sprintf("%s (%s %s)", variantLabel(r), num(metric(r).Median), unit))
	}
	return strings.Join(names, " ≈ ")
}

// summaryMemory is the answer at SummaryRate for the section's
// environment and shared consumer: each path's memory and CPU per event,
// and the paths that cannot keep up.
func summaryMemory(sm SizingModel, s *Section) string {
	var sized, cannot []string
	for _, m := range sm.envModels(s.Environment+" "+s.Kernel, "shared") {
		a := sm.AnswerFor(m, SummaryRate, sizing.DefaultSeconds)
		switch {
		case a.Verdict.HasSize():
			mark := ""
			if a.Verdict == sizing.VerdictExtrapolated {
				mark = " (extrapolated)"
			}
			cost := ""
			if c := costCell(a); c != "" {
				cost = fmt.Sprintf(" (%s CPU/event)", strings.TrimPrefix(c, " · "))
			}
			sized = append(sized, fmt.Sprintf("%s %s%s%s", variantName(m), bytesize.Format(a.Rec.PerCPUBytes), mark, cost))
		case a.Verdict == sizing.VerdictCannotKeepUp:
			cannot = append(cannot, variantName(m))
		}
	}
	if len(sized)+len(cannot) == 0 {
		return ""
	}
	if len(sized) == 0 {
		sized = []string{"no path sized"}
	}
	out := fmt.Sprintf("**memory per CPU at %s events/s per CPU** for a %s capture with a %.0f%% chance of a drop: %s",
		RateLabel(SummaryRate), durationLabel(sizing.DefaultSeconds), 100*sizing.Risk, strings.Join(sized, ", "))
	if len(cannot) > 0 {
		out += fmt.Sprintf("; **cannot keep up** there: %s", joinAnd(cannot))
	}
	return out
}
