package report

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/internal/bytesize"
)

func writeSizing(b *bytes.Buffer, s *Section, workload string) {
	fmt.Fprintf(b, "### Sizing recommendations: workload=%s\n\n", workload)
	fmt.Fprintf(b, "Per rate and path: the smallest per-CPU memory (subbuf × n) at which some sub-buffer count lost nothing in every run, "+
		"and every sub-buffer count tested at that memory, least loss first (in bold where its lost-%% range separates from the next count's). "+
		"Where no size lost nothing, the row with the least median loss is shown instead.\n\n")
	for _, rate := range s.Rates(workload) {
		rs := s.Sizing(workload, rate)
		fmt.Fprintf(b, "#### rate=%s\n\n", rate)
		if rs.Missing != "" {
			fmt.Fprintf(b, "%s.\n\n", capitalize(rs.Missing))
			continue
		}
		fmt.Fprintf(b, "Source: `%s`, rows `BenchmarkCapture/workload=%s/rate=%s/path=…`. Cells: median [min–max] over n runs; "+
			"the cost columns are the pick's.\n\n", s.File, workload, rate)
		fmt.Fprintf(b, "| path | tested per-CPU sizes | smallest per-CPU memory that lost nothing | sub-buffers at that memory: lost-%% | %s | %s | n |\n",
			UnitOverhead, UnitConsumer)
		fmt.Fprintf(b, "|---|---|---|---|---|---|---|\n")
		var missing []string
		// Geometries the bench-level runs but the file lacks, grouped by
		// the variants that lack the same ones.
		var notRunWhat []string
		var notRunWho [][]string
		for _, sz := range rs.Sizings {
			if sz.Missing != "" {
				missing = append(missing, fmt.Sprintf("%s: no rows; %s", sz.Variant, sz.Missing))
				continue
			}
			for _, sk := range sz.Skipped {
				missing = append(missing, fmt.Sprintf("%s at %s: skipped by the benchmark in %s: %s",
					sz.Variant, geomLabelOf(sk.Geometry), runs(sk.Runs), sk.Reason))
			}
			if len(sz.NotRun) > 0 {
				var gs []string
				for _, g := range sz.NotRun {
					gs = append(gs, geomLabelOf(g))
				}
				key := strings.Join(gs, ", ") + " not in the file (" + s.MissingReason(sz.Variant.Path) + ")"
				if i := slices.Index(notRunWhat, key); i >= 0 {
					notRunWho[i] = append(notRunWho[i], sz.Variant.String())
				} else {
					notRunWhat = append(notRunWhat, key)
					notRunWho = append(notRunWho, []string{sz.Variant.String()})
				}
			}
			fmt.Fprintln(b, sizingRow(sz))
		}
		fmt.Fprintln(b)
		for i, what := range notRunWhat {
			missing = append(missing, strings.Join(notRunWho[i], "; ")+": "+what)
		}
		fmt.Fprintf(b, "%s\n\n", recommendation(s, rs))
		if len(missing) > 0 {
			fmt.Fprintf(b, "Missing at rate=%s:\n\n", rate)
			for _, m := range missing {
				fmt.Fprintf(b, "- %s\n", m)
			}
			fmt.Fprintln(b)
		}
	}
}

// sizingRow is one variant's row of a rate's sizing table: the sizes
// tested, the smallest that lost nothing, every sub-buffer count at that
// memory and the pick's costs.
func sizingRow(sz Sizing) string {
	var tested []string
	for _, r := range sz.Rows {
		mem, _ := r.PerCPUBytes()
		if t := bytesize.Format(mem); !slices.Contains(tested, t) {
			tested = append(tested, t)
		}
	}
	smallest := "none of the tested sizes"
	if sz.ZeroLossBytes > 0 {
		smallest = "**" + bytesize.Format(sz.ZeroLossBytes) + "**"
	}
	// The pick is bold only where its loss separates from the next
	// count's; otherwise the counts are not told apart.
	var at []string
	for _, r := range sz.AtMemory {
		c := geomLabel(r) + ": " + cell(r.Metric(UnitLost), r.Runs)
		if r == sz.Pick && lossSeparates(sz.AtMemory) {
			c = "**" + c + "**"
		}
		at = append(at, c)
	}
	atCol := strings.Join(at, "; ")
	if !lossSeparates(sz.AtMemory) {
		atCol += " (no difference measured between the counts)"
	}
	if sz.ZeroLossBytes == 0 {
		mem, _ := sz.Pick.PerCPUBytes()
		atCol = "least loss at " + bytesize.Format(mem) + ": " + atCol
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %d |", sz.Variant, strings.Join(tested, ", "), smallest, atCol,
		cell(sz.Pick.Metric(UnitOverhead), sz.Pick.Runs), cell(sz.Pick.Metric(UnitConsumer), sz.Pick.Runs), sz.Pick.Runs)
}

// recommendation is the plain-language line of a rate, derived from rs.
// "Lost nothing" comes with what it bounds: after n runs without a loss,
// the chance of a lossy run is below lossFreeBound(n) at 95% confidence.
func recommendation(s *Section, rs RateSizing) string {
	var parts []string
	cpus, _ := strconv.Atoi(s.ConfigValue("cpus"))
	rateOf := func(r *Row) string {
		ev, ok := r.eventsPerSec()
		if !ok || cpus <= 0 {
			return ""
		}
		return fmt.Sprintf(" at %s events/s per CPU", RateLabel(ev/float64(cpus)))
	}
	switch {
	case rs.Rate == HeadlineRate && len(rs.LeastMemory) > 0:
		// Each path reaches its own rate in the closed loop: its memory
		// is stated, not ranked against the others'.
		var vs []string
		for _, sz := range rs.Sizings {
			if sz.ZeroLossBytes > 0 && sz.Pick != nil && sz.Pick.ZeroLoss() {
				vs = append(vs, fmt.Sprintf("%s %s (%s%s, 0 lost in %d of %d runs)", sz.Variant, bytesize.Format(sz.ZeroLossBytes),
					geomLabel(sz.Pick), rateOf(sz.Pick), sz.Pick.Metric(UnitLost).N(), sz.Pick.Runs))
			}
		}
		parts = append(parts, fmt.Sprintf("least memory per CPU each path lost nothing with, at the rate it let the workload reach "+
			"(not a ranking: each ran at its own rate, and a slow path loses less by throttling what it measures): %s", joinAnd(vs)))
	case len(rs.LeastMemory) > 0:
		var vs []string
		for _, sz := range rs.LeastMemory {
			vs = append(vs, fmt.Sprintf("%s (%s%s: 0 lost in %d of %d runs, a lossy run's chance below %.0f%% at 95%% confidence)",
				sz.Variant, geomLabel(sz.Pick), rateOf(sz.Pick), sz.Pick.Metric(UnitLost).N(), sz.Pick.Runs, 100*lossFreeBound(sz.Pick.Runs)))
		}
		parts = append(parts, fmt.Sprintf("least memory that lost nothing, %s per CPU: %s", bytesize.Format(rs.LeastMemory[0].ZeroLossBytes), joinAnd(vs)))
	default:
		var best *Row
		order := lossOrder(rs.CostUnit)
		for _, sz := range rs.Sizings {
			if sz.Pick != nil && sz.Pick.Metric(UnitLost) != nil && (best == nil || order(sz.Pick, best) < 0) {
				best = sz.Pick
			}
		}
		if best == nil {
			parts = append(parts, "no row reported lost-%")
		} else {
			mem, _ := best.PerCPUBytes()
			parts = append(parts, fmt.Sprintf("no tested size lost nothing in every run; least loss: %s at %s (%s per CPU), %s lost-%%",
				variantOf(best), geomLabel(best), bytesize.Format(mem), cell(best.Metric(UnitLost), best.Runs)))
		}
	}
	if c := rs.Cheapest; c != nil && c.ZeroLoss() {
		unitNote := ""
		if rs.CostUnit != UnitOverhead {
			unitNote = " (overhead is measured in the closed loop only, config line `overhead:`)"
		}
		line := fmt.Sprintf("least %s among the rows that lost nothing: %s at %s, %s%s", rs.CostUnit, variantOf(c), geomLabel(c), cell(c.Metric(rs.CostUnit), c.Runs), unitNote)
		if r := rs.RunnerUp; r != nil && r.ZeroLoss() {
			cm, rm := c.Metric(rs.CostUnit), r.Metric(rs.CostUnit)
			verdict := "no difference measured: the ranges overlap"
			if cm.Max < rm.Min {
				verdict = "the ranges separate"
			}
			line += fmt.Sprintf("; next, another path or mode at the same memory and rate: %s at %s, %s (%s)", variantOf(r), geomLabel(r), cell(rm, r.Runs), verdict)
		} else {
			line += " (no other path or mode lost nothing at the same memory and rate within 5%: nothing to rank it against)"
		}
		parts = append(parts, line)
	}
	n := runCounts(rs)
	return fmt.Sprintf("**At rate=%s** (`%s`, medians over %s runs, [min–max]): %s.", rs.Rate, s.File, n, strings.Join(parts, "; "))
}

// runCounts describes the run counts of a rate's rows: "6", or "5–6".
func runCounts(rs RateSizing) string {
	lo, hi := math.MaxInt, 0
	for _, sz := range rs.Sizings {
		for _, r := range sz.Rows {
			lo, hi = min(lo, r.Runs), max(hi, r.Runs)
		}
	}
	if hi == 0 {
		return "0"
	}
	if lo == hi {
		return fmt.Sprint(hi)
	}
	return fmt.Sprintf("%d–%d", lo, hi)
}

// lossSeparates says whether the first of rows (least loss first) lost
// less than the second in every run: true for a single row.
func lossSeparates(rows []*Row) bool {
	if len(rows) < 2 {
		return true
	}
	a, b := rows[0].Metric(UnitLost), rows[1].Metric(UnitLost)
	return a != nil && (b == nil || a.Max < b.Min)
}
