package report

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/slabbench/slabbench/sizing"
)

// variantLabel names a row by its path and reader wakeup.
func variantLabel(r *Row) string {
	return pathWakeup(r.Keys["path"], r.Keys["wakeup"])
}

// CostRows are, per transport variant (the file's attach mode), the
// closed-loop row of the first placement with the most memory: the one
// that lost least, whose costs are least distorted by a full buffer.
func (s *Section) CostRows(workload string) []*Row {
	best := map[Variant]*Row{}
	var order []Variant
	for _, r := range s.captureRows(workload, HeadlineRate) {
		v := variantOf(r)
		if !slices.Contains(Paths, v.Path) || v.Attach != "" && v.Attach != s.Attach {
			continue
		}
		mem, ok := r.PerCPUBytes()
		if !ok {
			continue
		}
		if cur, seen := best[v]; !seen {
			order = append(order, v)
			best[v] = r
		} else if m, _ := cur.PerCPUBytes(); mem > m {
			best[v] = r
		}
	}
	var out []*Row
	for _, v := range order {
		out = append(out, best[v])
	}
	slices.SortStableFunc(out, func(a, b *Row) int {
		return cmp.Or(cmp.Compare(pathRank(a.Keys["path"]), pathRank(b.Keys["path"])), cmp.Compare(a.Keys["wakeup"], b.Keys["wakeup"]))
	})
	return out
}

// writePick writes the paragraph on which path to pick for which need,
// each claim from the rows it names.
func writePick(b *bytes.Buffer, sections []*Section, sm SizingModel) {
	fmt.Fprintf(b, "## Which path for which need\n\n")
	for _, s := range sections {
		wls := s.Workloads()
		if len(wls) == 0 {
			continue
		}
		wl := wls[0]
		var claims []string
		if c, ok := s.comparable(wl); ok {
			claims = append(claims, fmt.Sprintf("**least CPU per event** (probe-ns/event + consumer-ns/event; %s; truth stamp: its price, "+
				"BenchmarkProbeParts' probe-ns/event of the accounted program, part=accounted/truth=on less truth=off, [the widest difference their ranges allow]): %s",
				c, s.cpuOrdering(c.Rows)))
			claims = append(claims, fmt.Sprintf("**lowest lag** (lag-p99-us, the same rows): %s", orderingBy(c.Rows, UnitLagP99, variantLabel)))
		}
		env := s.Environment + " " + s.Kernel
		// Among the paths whose consumer can keep up at that rate (a
		// saturated one has no size), every one that asks the least.
		// Sized answers compare only with sized ones: an extrapolated
		// size is the model's form, not what the rows checked.
		var least []sizing.Model
		leastBytes := 0
		for _, verdict := range []sizing.Verdict{sizing.VerdictSized, sizing.VerdictExtrapolated} {
			for _, m := range sm.envModels(env, "shared") {
				a, _ := sm.Decision(m, 100e3, sizing.DefaultSeconds)
				switch {
				case a.Verdict != verdict:
				case len(least) == 0 || a.Rec.PerCPUBytes < leastBytes:
					least, leastBytes = []sizing.Model{m}, a.Rec.PerCPUBytes
				case a.Rec.PerCPUBytes == leastBytes:
					least = append(least, m)
				}
			}
			if len(least) > 0 {
				break
			}
		}
		if len(least) > 0 {
			a, _ := sm.Decision(least[0], 100e3, sizing.DefaultSeconds)
			var names []string
			for _, m := range least {
				names = append(names, variantName(m))
			}
			claims = append(claims, fmt.Sprintf("**least memory** at 100k events/s per CPU, consumer shared, among the paths the answer sizes (extrapolated ones only where none is sized): %s, %s per CPU (the answer table)",
				joinAnd(names), memoryCell(a)))
		}
		if ac := s.AttachModes(wl); len(ac.Floors) > 2 {
			claims = append(claims, fmt.Sprintf("**attaching by function** (kprobe, fentry; where a tracepoint lacks what you need): "+
				"the empty programs' slowdown per op was %s (Attach modes)", Ordering(ac.Floors, UnitFloor)))
		}
		if len(claims) == 0 {
			continue
		}
		fmt.Fprintf(b, "%s, kernel %s (`%s`, medians [min–max] over the runs; `<` only where the ranges separate, `≈`: no difference measured):\n\n",
			s.Environment, s.Kernel, s.File)
		for _, c := range claims {
			fmt.Fprintf(b, "- %s.\n", c)
		}
		fmt.Fprintln(b)
	}
	fmt.Fprintf(b, "**Module or not**: relay needs the slabrelay module loaded (here it runs in the VM only); the BPF paths need none. "+
		"The module has no recursion protection, so it does not skip an event that comes while another probe runs; a BPF program "+
		"does, and a tracepoint program does so without counting it (docs/leaks.md, Frees in interrupt context).\n\n")
}

// writeCosts writes the cost split per event of the CostRows.
func writeCosts(b *bytes.Buffer, sections []*Section, plots map[*Section]string) {
	fmt.Fprintf(b, "## Cost per event, split\n\n")
	fmt.Fprintf(b, "Per transport, the closed-loop row with the most memory (it lost least), two producers sharing the CPUs with the consumer, "+
		"the attach mode the file's whole matrix runs (named in the summary). probe-ns/event is CPU time inside the probe (the kernel's measure), consumer-ns/event the reader's CPU "+
		"time per captured record; overhead-ns/event is the workload's wall-time slowdown per event against its paired baseline "+
		"(with two producers in parallel, about half the CPU time). Medians [min–max].\n\n")
	for _, s := range sections {
		for _, wl := range s.Workloads() {
			rows := s.CostRows(wl)
			if len(rows) == 0 {
				continue
			}
			fmt.Fprintf(b, "**%s, kernel %s, workload %s** (`%s`)\n\n", s.Environment, s.Kernel, wl, s.File)
			fmt.Fprintf(b, "| path, wakeup | subbuf × n | %s | %s | %s | lost-%% | n |\n|---|---|---|---|---|---|---|\n", UnitProbe, UnitConsumer, UnitOverhead)
			for _, r := range rows {
				fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %d |\n", variantLabel(r), geomLabel(r), cell(r.Metric(UnitProbe), r.Runs),
					cell(r.Metric(UnitConsumer), r.Runs), cell(r.Metric(UnitOverhead), r.Runs), cell(r.Metric(UnitLost), r.Runs), r.Runs)
			}
			fmt.Fprintln(b)
			break // the first workload: the others run open loops only
		}
		if link := plots[s]; link != "" {
			fmt.Fprintf(b, "![CPU per event, probe and consumer stacked, %s %s](%s)\n\n", s.Environment, s.Kernel, link)
		}
	}
}
