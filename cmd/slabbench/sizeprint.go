package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/report"
)

// percent writes a chance as a percentage to two digits, or as under
// 0.0001% where two digits would say nothing.
func percent(p float64) string {
	if p < 1e-6 {
		return "under 0.0001%"
	}
	return fmt.Sprintf("%.2g%%", 100*p)
}

func numOrNil(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func printSize(a sizeAnswer, consumer string) {
	fmt.Println(whoseAnswer(a.Machine, a.ThisMachine))
	fmt.Printf("buffer sizes for %s events/s per CPU, consumer %s, a capture of %v with a %.0f%% chance of a drop\n",
		report.RateLabel(a.Rate), consumer, time.Duration(a.Seconds*float64(time.Second)), 100*a.Risk)
	for _, p := range a.Paths {
		name := p.Path
		if p.Wakeup != "" {
			name += ", wakeup " + p.Wakeup
		}
		fmt.Printf("\n%s (%s): %s\n", name, p.Environment, p.Verdict)
		if p.Why != "" {
			fmt.Printf("  %s\n", p.Why)
		}
		if p.Calibration != nil {
			printCalibrated(p)
			continue
		}
		if p.PerCPUBytes > 0 {
			printSized(os.Stdout, p)
		}
		if p.Model == "" {
			continue
		}
		fmt.Printf("  cost per event, measured: probe %s ns, consumer %s ns (open loop nearest this rate and size), overhead %s ns (closed loop)\n",
			nsCell(p.ProbeNs), nsCell(p.ConsumerNs), nsCell(p.OverheadNs))
		for _, from := range []string{p.CostFrom, p.OverheadFrom} {
			if from != "" {
				fmt.Printf("         from %s\n", from)
			}
		}
		if sc := p.Scores; sc != nil {
			fmt.Printf("  held-out open loops here (%d): Brier score of the model's chances %.3f; base rate %.3f; nearest clean size × rate ratio %.3f (lower is better)\n",
				sc.Rows, sc.Model, sc.BaseRate, sc.NearestClean)
			if sc.BaseRate <= sc.Model && p.Rule != ruleNearestClean {
				// The base rate names no size, so the model's stays (unless the
				// nearest-clean rule replaced it, which its line says); the user
				// should know the model's chances carry no information here.
				fmt.Printf("  the model's chances of a drop forecast no better here than the share of held-out rows that dropped: take its size as a rough guide, and check it with a capture\n")
			}
		}
		fmt.Printf("  validated at %s-%s events/s per CPU (held-out open loops that dropped nothing where the model said so); %d of %d held-out rows classified right\n",
			report.RateLabel(p.ValidatedRates[0]), report.RateLabel(p.ValidatedRates[1]), p.HeldOut[0], p.HeldOut[1])
	}
}

// printFlags writes a sized path's flags and memory.
func printFlags(w io.Writer, p sizePath) {
	fmt.Fprintf(w, "  %s   (%s per CPU", p.Flags, bytesize.Format(p.PerCPUBytes))
	if p.RingbufBytes > 0 {
		fmt.Fprintf(w, "; the ring buffer %s in all", bytesize.Format(p.RingbufBytes))
	}
	fmt.Fprintf(w, ")\n")
}

// printSized writes a sized path's flags and the reasoning of what chose
// its size: the model's, or the nearest-clean-size rule's.
func printSized(w io.Writer, p sizePath) {
	printFlags(w, p)
	fmt.Fprintf(w, "  model: %s\n", p.Model)
	if r := p.CleanRule; p.Rule == ruleNearestClean && r != nil {
		fmt.Fprintf(w, "         the rule: %s per CPU dropped nothing at %s events/s per CPU, the nearest fitted rate; scaled by the rates' ratio: %s per CPU; margin %.2fx (rounded up to a power of two)\n",
			bytesize.Approx(r.CleanBytes), report.RateLabel(r.AtRate), bytesize.Approx(r.Need), p.Margin)
		return
	}
	burst := ""
	if p.BurstBytes > 0 {
		burst = fmt.Sprintf(" and hold a %s burst of other tasks' events", bytesize.Approx(p.BurstBytes))
	}
	busy := ""
	if p.ConsumerLoad > 0.05 {
		busy = fmt.Sprintf(" (%.3g ms for a consumer that needs %.0f%% of a CPU here)", p.HoldMs/(1-p.ConsumerLoad), 100*p.ConsumerLoad)
	}
	fmt.Fprintf(w, "         the buffer must outlast a %.3g ms absence%s%s: %s per CPU; margin %.2fx (rounded up to a power of two; the model's chance of a drop there %s)\n",
		p.HoldMs, busy, burst, bytesize.Approx(p.NeedBytes), p.Margin, percent(p.RiskAt))
}

// whoseAnswer is size's first line: the machine the answer was measured
// on and, where this one differs, that it is another machine's answer.
func whoseAnswer(from, here report.Machine) string {
	if from.File == "" {
		return fmt.Sprintf("no results of %s with open-loop grids (BENCH=full make bench runs them), which the sizing model is fitted on, among the results files; slabbench calibrate measures this machine", here.Environment)
	}
	where := fmt.Sprintf("%s, %d CPUs, kernel %s, %s, commit %s (%s)", from.CPU, from.CPUs, from.Kernel, from.Environment, from.Commit, from.File)
	switch {
	case from.Environment != here.Environment:
		return fmt.Sprintf("answer measured in %s: %s; not this machine (%s), so compare paths with it, not absolute sizes", from.Environment, where, here.Environment)
	case !from.SameHardware(here):
		return fmt.Sprintf("ANOTHER MACHINE'S ANSWER: measured on %s; this machine is %s, %d CPUs, kernel %s. "+
			"For this one: slabbench calibrate (a few minutes), then slabbench size again",
			where, here.CPU, here.CPUs, here.Kernel)
	case from.Kernel != here.Kernel:
		return fmt.Sprintf("answer measured on this CPU model and count under another kernel: %s; this machine runs %s (slabbench calibrate measures it)", where, here.Kernel)
	}
	return "answer measured on this machine: " + where
}

func nsCell(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", *v)
}
