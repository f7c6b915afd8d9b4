package report

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/sizing"
)

// writeValidation writes whether the held-out rows dropped as the model
// said: in all, binned by the model's chance, and per key.
func writeValidation(b *bytes.Buffer, sm SizingModel) {
	v := sm.Validation
	correct, total := v.Accuracy(false)
	fmt.Fprintf(b, "### Held-out rows: dropped or not, as the model said?\n\n")
	if total == 0 {
		fmt.Fprintf(b, "No held-out rows with a model.\n\n")
		return
	}
	fmt.Fprintf(b, "A held-out row is classified right when the model's minimum at its rate, sub-buffer count and the total length of its runs "+
		"(at even odds of a drop in them) is at most its memory and it dropped nothing in any run, or above it and it dropped "+
		"(buffer full; missed events are not the buffer's and do not count). **%d of %d right (%.0f%%)**; the goal is 90%%. ",
		correct, total, 100*float64(correct)/float64(total))
	ov := v.OpenLoops()
	oc, ot := ov.Accuracy(false)
	best, bt := v.Ceiling()
	if ot > 0 && bt > 0 {
		fmt.Fprintf(b, "Open loops only (a set rate, which the model is for; in a closed loop the workload runs flat out beside the consumer, "+
			"and whether the consumer keeps up is its share of the CPUs, not an absence a buffer outlasts): %d of %d (%.0f%%). "+
			"How much of the rest is noise: the best any \"this memory or more drops nothing\" threshold could do, chosen per "+
			"path, workload and rate after the fact, is %d of %d (%.0f%%), because a larger buffer sometimes dropped in one run "+
			"where a smaller one did not.",
			oc, ot, 100*float64(oc)/float64(ot), best, bt, 100*float64(best)/float64(bt))
	}
	fmt.Fprintf(b, "\n\n")
	writeCalibration(b, v)
	fmt.Fprintf(b, "| environment | path, wakeup | consumer | held-out rows | right | wrong: predicted no drops, dropped | wrong: predicted drops, dropped nothing |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|\n")
	for _, m := range sm.Models {
		var n, ok, optimistic, pessimistic int
		for _, c := range v.Checks {
			if c.Key != m.Key || !c.HasModel {
				continue
			}
			n++
			switch {
			case c.Correct():
				ok++
			case c.PredictNoDrops:
				optimistic++
			default:
				pessimistic++
			}
		}
		if n > 0 {
			fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %d | %d |\n", m.Env, variantName(m), m.Consumer, n, ok, optimistic, pessimistic)
		}
	}
	fmt.Fprintln(b)
	fmt.Fprintf(b, "### Predicted against measured minimum memory\n\n")
	fmt.Fprintf(b, "Per held-out workload and rate: the measured boundary on the tested grid (the largest size that dropped → the smallest that "+
		"dropped nothing in every run) against the model's minimum there. The grid steps ×2, so a ratio (model ÷ smallest loss-free) "+
		"between the two sizes' ratio and 1 is exact on it; the goal is within 2× (0.5–2).\n\n")
	fmt.Fprintf(b, "| environment | path, wakeup | consumer | workload | rate | events/s per CPU | measured: dropped → dropped nothing | model | ratio |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|\n")
	within, bounded := 0, 0
	for _, bd := range v.Boundaries {
		measured := "dropped at every size tested"
		ratio := "—"
		if bd.NoDrops > 0 {
			lossy := "none tested below"
			if bd.Lossy > 0 {
				lossy = bytesize.Format(bd.Lossy)
			}
			measured = lossy + " → " + bytesize.Format(bd.NoDrops)
			ratio = fmt.Sprintf("%.2f", bd.Ratio())
			bounded++
			if bd.Within2x() {
				within++
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", bd.Env, variantName(sizing.Model{Key: bd.Key}), bd.Consumer,
			bd.Workload, bd.Rate, num(bd.PerCPURate), measured, bytesize.Approx(bd.Need), ratio)
	}
	fmt.Fprintln(b)
	if bounded > 0 {
		fmt.Fprintf(b, "%d of %d measured boundaries are within 2× of the model's.\n\n", within, bounded)
	}
}

// writeCalibration writes the held-out rows binned by the model's chance
// that they drop, against how many did.
func writeCalibration(b *bytes.Buffer, v sizing.Validation) {
	fmt.Fprintf(b, "The model gives each row a chance of dropping in one of its runs (1 − e^(−Σ T·ν) over its runs: ν the rate, at the run's own, of absences longer than its readable buffer lasts plus bursts larger than it holds). "+
		"Where it knows its uncertainty, about that share of the rows in each bin dropped (open loops):\n\n")
	fmt.Fprintf(b, "| model's chance of a drop | held-out rows | mean chance | dropped |\n|---|---|---|---|\n")
	for _, bin := range v.OpenLoops().Calibration(0, 0.1, 0.5, 0.9, 1) {
		if bin.Rows == 0 {
			continue
		}
		fmt.Fprintf(b, "| %.0f–%.0f%% | %d | %.0f%% | %d (%.0f%%) |\n", 100*bin.Lo, 100*bin.Hi, bin.Rows, 100*bin.MeanDropChance,
			bin.Dropped, 100*float64(bin.Dropped)/float64(bin.Rows))
	}
	fmt.Fprintln(b)
}

// lossFreeBound is the 95% upper bound on the chance that a run loses
// events, after n runs that lost none: 1 − 0.05^(1/n).
func lossFreeBound(n int) float64 {
	return 1 - math.Pow(0.05, 1/float64(n))
}

// writeValidationSummary writes, right under the answer, how the model
// did on the rows it was not fitted on, per environment (the details are
// in the model section).
func writeValidationSummary(b *bytes.Buffer, sm SizingModel) {
	if len(sm.Models) == 0 {
		return
	}
	fmt.Fprintf(b, "## How far to trust it: the model on rows it was not fitted on\n\n")
	fmt.Fprintf(b, "Held-out rows: the model, asked for the length of the row's runs together at even odds, says loss-free or lossy; "+
		"the row dropped in no run or in some (goal: 90%% right); in brackets, how many the model expects to get right if its chances of a drop were exact "+
		"(the sum over the rows of the larger of its chance and one minus it): a row that meets one of the host's bursts or not by chance is a coin flip for any model. Open loops: the same, for the rows at a set rate, which the model is for; "+
		"in brackets, the best a per-series memory threshold chosen after the fact could do (the noise's ceiling). "+
		"Held-out runs: the same, run by run, each at its own rate and length. "+
		"Boundaries: the model's minimum memory over the smallest tested size that dropped in no run, per held-out rate and workload "+
		"(goal: within 2×, 0.5–2). Details and the model's parameters: [the sizing model](#the-sizing-model-and-its-held-out-validation).\n\n")
	fmt.Fprintf(b, "| environment | held-out rows right (expected) | open loops right (ceiling) | held-out runs right | boundaries within 2× | boundary ratios |\n|---|---|---|---|---|---|\n")
	for _, env := range sm.envs() {
		v := sm.Validation.ForEnv(env)
		right, rows := v.Accuracy(false)
		runsRight, runs := v.RunAccuracy()
		var within, bounded int
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, bd := range v.Boundaries {
			if bd.NoDrops == 0 {
				continue
			}
			bounded++
			if bd.Within2x() {
				within++
			}
			lo, hi = min(lo, bd.Ratio()), max(hi, bd.Ratio())
		}
		if rows == 0 {
			continue
		}
		ratios := "—"
		if bounded > 0 {
			ratios = fmt.Sprintf("%.2f–%.2f", lo, hi)
		}
		runCell := "—"
		if runs > 0 {
			runCell = fmt.Sprintf("%d of %d (%.0f%%)", runsRight, runs, 100*float64(runsRight)/float64(runs))
		}
		openCell := "—"
		if oc, ot := v.OpenLoops().Accuracy(false); ot > 0 {
			best, bt := v.Ceiling()
			openCell = fmt.Sprintf("%d of %d (%.0f%%; ceiling %.0f%%)", oc, ot, 100*float64(oc)/float64(ot), 100*float64(best)/float64(max(bt, 1)))
		}
		expected, _ := v.Expected()
		fmt.Fprintf(b, "| %s | %d of %d (%.0f%%; expected %.0f%%) | %s | %s | %d of %d | %s |\n", env, right, rows, 100*float64(right)/float64(rows),
			100*expected/float64(rows), openCell, runCell, within, bounded, ratios)
	}
	fmt.Fprintln(b)
	writeScores(b, sm)
}

// heldOutKind says whether the scores are on rows declared held out before
// they were measured.
func heldOutKind(sm SizingModel) string {
	if sm.HeldOutDeclared {
		return "The held-out open loops are the ones bench/plan declared before they were measured."
	}
	return "These held-out open loops were chosen after the results were seen (the rates between the fitted ones), so the model's score is optimistic."
}

// scoreResolution is half the last digit the scores are printed with: a
// term that moves the score by less earns nothing a reader can see.
const scoreResolution = 0.0005

// termScore is the Brier score of the model fitted again with one term
// less or, added, one term more, and what that says of the term: it earns
// its place where the form with it scores lower by at least
// scoreResolution, so that a difference within the noise reads as small
// as it is.
func termScore(model, refit sizing.Scores, added bool) string {
	if refit.Rows != model.Rows {
		return "—"
	}
	gain := refit.Model - model.Model // what the term removed gained, or the term added lost
	switch {
	case !added && gain < scoreResolution:
		return fmt.Sprintf("%.3f (no worse without it: the term does not earn its place)", refit.Model)
	case !added:
		return fmt.Sprintf("%.3f (%.3f worse without it)", refit.Model, gain)
	case -gain < scoreResolution:
		return fmt.Sprintf("%.3f (no better with it: the term stays out)", refit.Model)
	}
	return fmt.Sprintf("%.3f (%.3f better with it: the term would earn its place)", refit.Model, -gain)
}

// writeScores writes the Brier scores of the model's chances and of two
// baselines on the held-out open loops, per environment that has any.
func writeScores(b *bytes.Buffer, sm SizingModel) {
	var rows []string
	var noBursts, withLoad sizing.Validation
	for _, env := range sm.envs() {
		sc := sm.Validation.ForEnv(env).Scores(sm.Fitted)
		if sc.Rows == 0 {
			continue
		}
		if len(rows) == 0 { // refitted once, for every environment
			noBursts = sm.Refit(sizing.Form{NoBursts: true, NoLoad: sizing.ModelForm.NoLoad})
			withLoad = sm.Refit(sizing.Form{NoBursts: sizing.ModelForm.NoBursts})
		}
		beats := "no"
		if sc.Beats() {
			beats = "yes"
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %.3f | %s | %s | %.3f | %.3f | %s |\n", env, sc.Rows, sc.Model,
			termScore(sc, noBursts.ForEnv(env).Scores(sm.Fitted), false), termScore(sc, withLoad.ForEnv(env).Scores(sm.Fitted), true),
			sc.BaseRate, sc.NearestClean, beats))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "Proper scores on the held-out open loops (Brier: the mean of (forecast chance of a drop − dropped)², lower is better, "+
		"¼ for a coin's ½ on every row): the model's chances against two forecasts without a model, built from the rows it was fitted on: "+
		"the share of its key's fitted rows that dropped, and \"drops unless its memory is at least the smallest loss-free memory at the nearest fitted rate, "+
		"scaled by the rates' ratio\" (0 or 1). Beside the model, the same model fitted again on the same rows without its burst term (the host's bursts), "+
		"and with the consumer's load (an absence's backlog over 1 − ρ, ρ the share of a CPU the consumer needs), a term the model leaves out because it has not "+
		"scored clearly better with it on held-out rows (docs/sizing.md): a term earns its place where the model scores lower with it. %s\n\n", heldOutKind(sm))
	fmt.Fprintf(b, "| environment | held-out open loops | model | without the burst term | with the consumer-load term | base rate | nearest clean size × rate ratio | the model beats both |\n|---|---|---|---|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, ""))
	fmt.Fprintln(b)
}
