package report

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
)

// A probe part is one BenchmarkProbeParts row, named by its part, truth
// and wakeup keys; partStep is what one row adds to another.
type partStep struct {
	label     string
	row, base string // base "" is the row itself
}

// partSteps add up to the batched capture with its truth stamp: every
// step but the last two is one more part of the program; the truth stamp
// and the wakeup decision are each measured on the accounted program, so
// their sum is checked against the capture row measured on its own.
var partSteps = []partStep{
	{"the program attached, returning at once (part=empty)", "part=empty", ""},
	{"the transport writes a zeroed record: its floor (part=floor)", "part=floor", "part=empty"},
	{"the record filled: clock, pid, CPU, the event's fields (part=fill)", "part=fill", "part=floor"},
	{"accounting and sequence numbers (part=accounted/truth=off)", partsUnstampedRow, "part=fill"},
	{"the truth stamp (part=accounted/truth=on)", partsStampRow, partsUnstampedRow},
	{"the batched wakeup decision (part=capture/truth=off/wakeup=batched)", partsLeanRow, partsUnstampedRow},
}

// relayStepLabels label, by row, the steps whose relay rows add something
// else than the eBPF ones: relay decides no wakeup, its channel wakes a
// waiting reader at each sub-buffer's end in every row from the floor up,
// so its capture row differs from the accounted one in its reader only.
var relayStepLabels = map[string]string{
	"part=capture/truth=off/wakeup=batched": "the capture's reader instead of the polling one (relay decides no wakeup; part=capture/truth=off/wakeup=batched)",
}

const (
	partsCaptureRow = "part=capture/truth=on/wakeup=batched"
	partsEveryRow   = "part=capture/truth=on/wakeup=every"
	partsPollRow    = "part=capture/truth=on/wakeup=poll"
	partsFloorRow   = "part=floor"
	partsLeanRow    = "part=capture/truth=off/wakeup=batched"
	// The accounted program with the truth stamp and without it: the
	// stamp's price (Section.truthCost).
	partsStampRow     = "part=accounted/truth=on"
	partsUnstampedRow = "part=accounted/truth=off"
	// partsSumTolerance is how far the parts' sum may be from the capture
	// row for the report to call them a decomposition of it.
	partsSumTolerance = 0.10
)

// partName is a ProbeParts row's part, truth and wakeup keys.
func partName(r *Row) string {
	n := "part=" + r.Keys["part"]
	for _, k := range []string{"truth", "wakeup"} {
		if v, ok := r.Keys[k]; ok {
			n += "/" + k + "=" + v
		}
	}
	return n
}

// partGroup is the ProbeParts rows of one placement, path and attach mode.
type partGroup struct {
	producers, path, attach, workload string
	rows                              map[string]*Row
}

// probePartGroups collects a section's ProbeParts rows, in file order.
func (s *Section) probePartGroups() []*partGroup {
	var groups []*partGroup
	for _, r := range s.Rows {
		if r.Bench != "ProbeParts" {
			continue
		}
		i := slices.IndexFunc(groups, func(g *partGroup) bool {
			return g.producers == r.Keys["producers"] && g.path == r.Keys["path"] && g.attach == r.Keys["attach"] && g.workload == r.Keys["workload"]
		})
		if i < 0 {
			groups = append(groups, &partGroup{r.Keys["producers"], r.Keys["path"], r.Keys["attach"], r.Keys["workload"], map[string]*Row{}})
			i = len(groups) - 1
		}
		groups[i].rows[partName(r)] = r
	}
	return groups
}

// probe returns a row's probe-ns/event metric, or nil.
func (g *partGroup) probe(name string) *Metric {
	if r := g.rows[name]; r != nil {
		return r.Metric(UnitProbe)
	}
	return nil
}

// stepCell is a step's ns/event: the difference of the two rows' medians,
// with the widest difference their ranges allow.
func (g *partGroup) stepCell(st partStep) (float64, string) {
	m := g.probe(st.row)
	if m == nil {
		return math.NaN(), "—"
	}
	if st.base == "" {
		return m.Median, cell(m, g.rows[st.row].Runs)
	}
	return diffCell(m, g.probe(st.base))
}

// writeProbeParts writes the probe's time part by part, per file,
// placement and transport, where the file has BenchmarkProbeParts rows.
func writeProbeParts(b *bytes.Buffer, sections []*Section) {
	groups := make([][]*partGroup, len(sections))
	found := false
	for i, s := range sections {
		groups[i] = s.probePartGroups()
		found = found || len(groups[i]) > 0
	}
	if !found {
		return
	}
	fmt.Fprintf(b, "## The probe's time, part by part\n\n")
	fmt.Fprintf(b, "BenchmarkProbeParts: the capture program run with one more part each row, in one run (probe-ns/event, the kernel's own measure); "+
		"each file says whether its rows took their runs in turn, every row once a round (interleaved: the rows meet the machine's drift alike), or each row all of its runs in a row. "+
		"A step is the difference of two rows' medians, [the widest difference their ranges allow]. The part rows' reader polls every "+
		"millisecond, and the eBPF part programs never wake it (relay's channel wakes a waiting reader at each sub-buffer's end, in every row); the truth stamp and the wakeup decision are each measured on the accounted program, so the parts' sum "+
		"is a prediction of the capture row, which was measured on its own.\n\n")
	for i, s := range sections {
		for _, g := range groups[i] {
			writePartGroup(b, s, g)
		}
	}
}

func writePartGroup(b *bytes.Buffer, s *Section, g *partGroup) {
	producers := g.producers + " producers"
	if g.producers == "1" {
		producers = "1 producer"
	}
	probe := g.path
	if g.attach != "" {
		probe += ", " + g.attach
	}
	order := "each row's runs in a row"
	if s.interleaved() {
		order = "runs interleaved"
	}
	fmt.Fprintf(b, "**%s, kernel %s: %s, %s, workload %s** (`%s`, %s)\n\n", s.Environment, s.Kernel, probe, producers, g.workload, s.File, order)
	fmt.Fprintf(b, "| part | adds, %s |\n|---|---|\n", UnitProbe)
	sum := 0.0
	for _, st := range partSteps {
		if l, ok := relayStepLabels[st.row]; ok && g.path == "relay" {
			st.label = l
		}
		d, c := g.stepCell(st)
		sum += d
		fmt.Fprintf(b, "| %s | %s |\n", st.label, c)
	}
	capture := g.probe(partsCaptureRow)
	fmt.Fprintf(b, "| **sum of the parts** | **%s** |\n", num(sum))
	if capture != nil {
		fmt.Fprintf(b, "| the capture, truth stamp on, batched wakeups (%s), measured | %s |\n", partsCaptureRow, cell(capture, g.rows[partsCaptureRow].Runs))
	}
	for _, alt := range []struct{ label, row string }{
		{"a wakeup for every record instead", partsEveryRow},
		{"a reader polling every millisecond instead, never woken", partsPollRow},
	} {
		if _, c := g.stepCell(partStep{row: alt.row, base: partsCaptureRow}); c != "—" {
			fmt.Fprintf(b, "| %s (%s) | %s |\n", alt.label, alt.row, c)
		}
	}
	fmt.Fprintln(b)
	if capture != nil && !math.IsNaN(sum) {
		off := sum/capture.Median - 1
		verdict := "within"
		if math.Abs(off) > partsSumTolerance {
			verdict = "not within"
		}
		fmt.Fprintf(b, "The parts sum to %s%% of the capture row: %s %.0f%% of it.", num(100*(1+off)), verdict, 100*partsSumTolerance)
	}
	if lean, floor := g.probe(partsLeanRow), g.probe(partsFloorRow); lean != nil && floor != nil {
		fmt.Fprintf(b, " The capture with the truth stamp off and batched wakeups costs %s× its floor (medians).", num(lean.Median/floor.Median))
	}
	fmt.Fprintf(b, "\n\n")
	g.writeLag(b)
}

// writeLag says what each wakeup policy costs in lag (lag-p99-us), where
// the capture rows report it.
func (g *partGroup) writeLag(b *bytes.Buffer) {
	var parts []string
	for _, w := range []struct{ name, row string }{{"batched", partsCaptureRow}, {"every record", partsEveryRow}, {"polling", partsPollRow}} {
		if r := g.rows[w.row]; r != nil {
			if m := r.Metric(UnitLagP99); m != nil {
				parts = append(parts, fmt.Sprintf("%s %s µs", w.name, cell(m, r.Runs)))
			}
		}
	}
	if len(parts) > 1 {
		fmt.Fprintf(b, "Lag p99 (%s) of the capture rows: %s.\n\n", UnitLagP99, strings.Join(parts, "; "))
	}
}

// interleaved says whether the file's parts were run a round at a time
// (scripts/bench.sh INTERLEAVE: its runs: line says so).
func (s *Section) interleaved() bool {
	i, ok := s.config["runs"]
	return ok && slices.ContainsFunc(s.Config[i].Values, func(v string) bool { return strings.Contains(v, "interleaved") })
}
