package report

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/bench/plan"
)

// UnitLate is an open loop's share of ops that started late.
const UnitLate = "late-%"

// RemovedReason begins the skip reason scripts/bench.sh writes for a row
// it took out of the file: still short of runs after running it again.
const RemovedReason = "left out by scripts/bench.sh"

// ExpectedRuns is how many runs each row of the file should have: its
// `runs:` config line, or else the run count most of its capture rows
// have (0 when it has none).
func (s *Section) ExpectedRuns() int {
	if n, err := strconv.Atoi(s.ConfigValue("runs")); err == nil && n > 0 {
		return n
	}
	count := map[int]int{}
	best := 0
	for _, r := range s.Rows {
		if r.Bench != "Capture" {
			continue
		}
		count[r.Runs]++
		if count[r.Runs] > count[best] || count[r.Runs] == count[best] && r.Runs > best {
			best = r.Runs
		}
	}
	return best
}

// LeftOut says why a capture row is no evidence for the answer, the
// model or a ranking ("" when it is): it lost a run to a rule of the
// benchmarks (fewer runs than the file's), or, as an open loop, its ops
// started late more than plan.MaxLatePercent of the time (median), so its
// arrivals were burstier than its rate.
func (s *Section) LeftOut(r *Row) string {
	if n := s.ExpectedRuns(); r.Runs < n {
		return fmt.Sprintf("%d of %d runs (the benchmarks skipped the others: %s)", r.Runs, n, skipSummary(s.Skipped[r.Name]))
	}
	if late, ok := r.Median(UnitLate); ok && late > plan.MaxLatePercent {
		return fmt.Sprintf("off schedule: a median %.0f%% of its ops started more than one interval late (at most %d%%)", late, plan.MaxLatePercent)
	}
	return ""
}

// skipSummary is the first reason the benchmarks gave, or "no reason
// recorded".
func skipSummary(reasons []string) string {
	if len(reasons) == 0 {
		return "no reason recorded"
	}
	return reasons[0]
}

// writeLeftOut lists the file's capture rows that are no evidence for
// the answer, the model or the rankings, with why.
func writeLeftOut(b *bytes.Buffer, s *Section) {
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(s.Skipped)) {
		for _, why := range s.Skipped[name] {
			if strings.HasPrefix(why, RemovedReason) && strings.HasPrefix(name, "BenchmarkCapture/") {
				lines = append(lines, fmt.Sprintf("- `%s`: not in the file: %s (first reason: %s)", strings.TrimPrefix(name, "BenchmarkCapture/"),
					strings.TrimPrefix(why, RemovedReason+": "), skipSummary(s.Skipped[name])))
				break
			}
		}
	}
	for _, r := range s.Rows {
		if r.Bench != "Capture" {
			continue
		}
		if why := s.LeftOut(r); why != "" {
			lines = append(lines, fmt.Sprintf("- `%s`: %s", strings.TrimPrefix(r.Name, "BenchmarkCapture/"), why))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "### Rows left out\n\n%d capture rows of `%s` are no evidence for the answer, the sizing model or the rankings, and are left out of them "+
		"(their figures still appear in the tables below):\n\n%s\n\n", len(lines), s.File, strings.Join(lines, "\n"))
}
