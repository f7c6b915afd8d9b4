package report

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/sizing"
)

// AnswerRates are the rates of the answer table, events/s per CPU.
var AnswerRates = []float64{10e3, 30e3, 100e3, 300e3, 1e6}

// variantRank orders models as the answer's columns: relay, then each
// transport batched before every.
func variantRank(m sizing.Model) int {
	return 2*slices.Index([]string{"relay", "ringbuf", "perfbuf"}, m.Path) + btoi(m.Wakeup == "every")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// envModels returns the models of one environment (kernel included) and
// consumer placement, in column order.
func (sm SizingModel) envModels(env, consumer string) []sizing.Model {
	var out []sizing.Model
	for _, m := range sm.Models {
		if m.Env == env && m.Consumer == consumer {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b sizing.Model) int { return cmp.Compare(variantRank(a), variantRank(b)) })
	return out
}

// envs lists the environments (kernel included) with models, native first.
func (sm SizingModel) envs() []string {
	var out []string
	for _, m := range sm.Models {
		if !slices.Contains(out, m.Env) {
			out = append(out, m.Env)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Or(-cmp.Compare(btoi(strings.HasPrefix(a, "native")), btoi(strings.HasPrefix(b, "native"))), cmp.Compare(a, b))
	})
	return out
}

func variantName(m sizing.Model) string { return pathWakeup(m.Path, m.Wakeup) }

// pathWakeup names a transport and its reader wakeup the one way every
// table of the report does: "ringbuf batched", "relay".
func pathWakeup(path, wakeup string) string {
	if wakeup == "" {
		return path
	}
	return path + " " + wakeup
}

// EnvScores are the Brier scores of the model and the two baselines on
// env's held-out open loops.
func (sm SizingModel) EnvScores(env string) sizing.Scores {
	return sm.Validation.ForEnv(env).Scores(sm.Fitted)
}

// RuleSize is the nearest-clean-size rule's answer for key k at rate
// where, by its environment's scores sc, that rule forecast the held-out
// open loops better than the model (a lower Brier score): then the rule,
// not the model, sizes the buffer, in slabbench size and in the report's
// answer alike. ok is false where the model's size stands.
func (sm SizingModel) RuleSize(sc sizing.Scores, k sizing.Key, rate float64) (sizing.CleanRule, bool) {
	if sc.Rows == 0 || sc.NearestClean >= sc.Model {
		return sizing.CleanRule{}, false
	}
	return sizing.NearestCleanSize(sm.Fitted, k, rate)
}

// Decision is the answer slabbench size gives for m at rate: the model's,
// or its verdict with the rule's memory, and the cost of the row nearest
// that memory, where RuleSize says the rule sizes it (rule true).
func (sm SizingModel) Decision(m sizing.Model, rate, seconds float64) (a sizing.Answer, rule bool) {
	a = sm.AnswerFor(m, rate, seconds)
	if !a.Verdict.HasSize() {
		return a, false
	}
	r, ok := sm.RuleSize(sm.EnvScores(m.Env), m.Key, rate)
	if !ok {
		return a, false
	}
	a.Rec.PerCPUBytes, a.Rec.SubbufBytes = sizing.RoundUp(r.Need)
	a.Cost = sizing.CostFor(sm.Observations, m.Key, sm.FitWorkload, rate, a.Rec.PerCPUBytes)
	return a, true
}

// answerCell is the decision's memory at rate, with its marks, and the
// CPU cost per event measured on the row it stands on; rule says the
// memory is the nearest-clean rule's.
func (sm SizingModel) answerCell(m sizing.Model, rate float64) (cell string, rule bool) {
	a, rule := sm.Decision(m, rate, sizing.DefaultSeconds)
	cell = memoryCell(a)
	if rule {
		cell += " §"
	}
	return cell + costCell(a), rule
}

// memoryCell is the decision's memory with its mark: † extrapolated;
// no size where the consumer cannot keep up.
func memoryCell(a sizing.Answer) string {
	switch a.Verdict {
	case sizing.VerdictCannotKeepUp:
		return "cannot keep up ‡"
	case sizing.VerdictNoModel:
		return "no model"
	case sizing.VerdictExtrapolated:
		return bytesize.Format(a.Rec.PerCPUBytes) + " †"
	}
	return bytesize.Format(a.Rec.PerCPUBytes)
}

// costCell is " · N ns": probe plus consumer CPU per event on the row the
// answer stands on ("" when that row has neither).
func costCell(a sizing.Answer) string {
	if math.IsNaN(a.Cost.ProbeNs) || math.IsNaN(a.Cost.ConsumerNs) {
		return ""
	}
	return fmt.Sprintf(" · %s ns", num(a.Cost.ProbeNs+a.Cost.ConsumerNs))
}

// RateLabel writes a rate to three significant digits: 10k, 300k, 1M.
func RateLabel(v float64) string { return sizing.RateText(v) }

// writeAnswer writes the report's first section: memory per CPU and cost
// per event for each path at the answer rates, as slabbench size decides
// them (Decision).
func writeAnswer(b *bytes.Buffer, sm SizingModel) {
	fmt.Fprintf(b, "## The answer: buffer memory per CPU for an event rate\n\n")
	if len(sm.Models) == 0 {
		fmt.Fprintf(b, "No sizing model: the results have no open-loop rows of %s that dropped nothing.\n\n", FitWorkload)
		return
	}
	fmt.Fprintf(b, "Each cell is one decision (`slabbench size --rate R` prints the same, with the flags):\n\n"+
		"- **memory**: per CPU, for a capture of %s with a %.0f%% chance of a drop, rounded up to a power of two in %d sub-buffers "+
		"(batched readers: `--wakeup-bytes` = one sub-buffer; relay wakes its reader per sub-buffer);\n"+
		"- **· N ns**: probe-ns/event + consumer-ns/event (medians), CPU per event measured on the open loop of %s nearest that rate "+
		"with the memory nearest the cell's;\n"+
		"- **†** extrapolated: outside the rates the held-out open loops checked, or longer than the model's runs together;\n"+
		"- **cannot keep up ‡**: no size, because no buffer fixes it: probe + consumer CPU per event comes to %.0f%% of a CPU or more at that rate, "+
		"an open loop at or below it missed its target rate, or every size tested there dropped",
		durationLabel(sizing.DefaultSeconds), 100*sizing.Risk, sizing.Subbufs, FitWorkload, 100*sizing.MaxLoad)
	tables, anyRule := sm.answerTables()
	if anyRule {
		fmt.Fprintf(b, ";\n- **§** the nearest-clean-size rule's memory, not the model's: in that environment the rule forecast the held-out open loops "+
			"better (a lower Brier score: [How far to trust it](#how-far-to-trust-it-the-model-on-rows-it-was-not-fitted-on)), so `slabbench size` answers with it")
	}
	fmt.Fprintf(b, ".\n\nRates are events/s per CPU: a row's `rate=` is ops/s over all its producers, times the workload's events/op, spread over the CPUs the producers ran on "+
		"(every CPU for the ring buffer, which they share).\n\n")
	b.Write(tables.Bytes())
}

// answerTables writes the answer's tables, one per environment and
// consumer placement, and says whether a cell holds the rule's memory.
func (sm SizingModel) answerTables() (b *bytes.Buffer, anyRule bool) {
	b = new(bytes.Buffer)
	for _, env := range sm.envs() {
		for _, consumer := range []string{"shared", "pinned"} {
			models := sm.envModels(env, consumer)
			if len(models) == 0 {
				continue
			}
			fmt.Fprintf(b, "**%s, consumer %s**\n\n| events/s per CPU |", env, consumer)
			for _, m := range models {
				fmt.Fprintf(b, " %s |", variantName(m))
			}
			fmt.Fprintf(b, "\n|---|%s\n", strings.Repeat("---|", len(models)))
			for _, rate := range AnswerRates {
				fmt.Fprintf(b, "| %s |", RateLabel(rate))
				for _, m := range models {
					cell, rule := sm.answerCell(m, rate)
					anyRule = anyRule || rule
					fmt.Fprintf(b, " %s |", cell)
				}
				fmt.Fprintln(b)
			}
			fmt.Fprintln(b)
		}
	}
	return b, anyRule
}

// durationLabel writes seconds as 1 minute, 10 minutes, 30 s.
func durationLabel(seconds float64) string {
	switch {
	case seconds >= 120 && math.Mod(seconds, 60) == 0:
		return fmt.Sprintf("%.0f minutes", seconds/60)
	case seconds == 60:
		return "1 minute"
	}
	return fmt.Sprintf("%.3g s", seconds)
}

// writeModel writes the model's form, its fitted parameters and its
// held-out validation.
func writeModel(b *bytes.Buffer, sm SizingModel) {
	fmt.Fprintf(b, "## The sizing model and its held-out validation\n\n")
	fmt.Fprintf(b, "The buffer must hold what accumulates while the consumer is not reading and what other tasks write into it in a burst, "+
		"plus what is written but not readable yet: per CPU, **M ≥ y** for a reader woken per record and **M ≥ y × n/(n−1)** for a batched reader "+
		"or relay (one of the n sub-buffers is being filled before the reader sees it), where y is the readable backlog a capture of d seconds "+
		"stays under but for a chance p. Two things push the backlog up, independently:\n\n"+
		"- **The consumer's absences.** Absences longer than x arrive at **λ(x) = a·e^(−x/τ)** per second (x ≥ %.1f ms) and leave r × s × x bytes: "+
		"r is events/s per CPU, s the bytes one record takes in that path's buffer (header and alignment included). Alone, they give "+
		"**y = r × s × H** with **H = τ·ln(a·d / −ln(1 − p))**: each tenfold longer capture needs τ·ln 10 more. "+
		"A busy consumer drains a backlog slowly, so the absences that come before it has caught up could add to it (a queue's busy period grows as "+
		"1/(1 − ρ), ρ = r × c the share of a CPU the consumer needs at that rate, c its measured consumer-ns/event, the median of the key's fitted rows); "+
		"the model leaves that factor out, since it has not scored clearly better with it on held-out rows (the scores below), and withholds a size where the probe and the consumer together need %.0f%% of a CPU or more.\n"+
		"- **Bursts of other tasks' slab events on one CPU** (what made them on the machine the committed results come from: docs/sizing.md). "+
		"They arrive at β per second whatever the capture's rate; the part of a burst the consumer has not read when the backlog peaks is "+
		"up to K events, uniform above %d (it meets the burst at a random point), and leaves that many events × s′ bytes plus δ of the capture's own events (r × s × δ): "+
		"s′ = s, or s over the CPUs for the ring buffer, which every CPU shares. Alone, they give **y = B × s′ + r × s × δ**, B the burst a capture of d seconds "+
		"meets but for a chance p (K once β·d ≫ p).\n\n"+
		"Together: y solves d × (λ(y / (r × s)) + β × (K − e)/(K − %d)) = −ln(1 − p), e = (y − r × s × δ)/s′ the burst's events (the second term is β below %d events and 0 above K); "+
		"y is about the larger of the two alone. "+
		"a and τ are fitted per environment, path, wakeup and consumer placement; β, K and δ per environment (the bursts are the machine's, not the path's), "+
		"both by maximum likelihood over every fitted run on its own, by turns until the likelihood settles: "+
		"a run of T seconds that dropped nothing kept its readable backlog (max-backlog-B less the unreadable sub-buffer) at most at y, "+
		"whose likelihood is the density of the largest backlog there; a run that dropped passed its readable buffer, probability "+
		"1 − e^(−T·ν) (the runs that dropped are censored, not left out). "+
		"A rare long absence is the consumer's, whatever path it reads, and one path's runs may not happen to show it: "+
		"each path takes the longer H of its own tail and that of all the paths read the same way (batched or relay; woken per record) "+
		"in its environment and placement (marked: group). Rates at which every run of every size dropped "+
		"are the consumer's limit, not an absence, and are left out. %s\n\n", 1e3*sizing.Threshold, 100*sizing.MaxLoad, sizing.BurstThreshold, sizing.BurstThreshold, sizing.BurstThreshold, splitSentence(sm))
	writeBursts(b, sm)
	fmt.Fprintf(b, "| environment | path, wakeup | consumer | s (B) | c (ns/event) | a (/s) | τ (ms) | H, 1 min (ms) | H, 1 hour (ms) | burst B × s′, 1 min (KB) | runs fitted (dropped), their total length | rows (dropped in no run) | kept up at, events/s per CPU | every size dropped at |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range sm.Models {
		unsus := "—"
		if m.Unsustained > 0 {
			unsus = fmt.Sprintf("%s (up to %s)", num(m.Unsustained), bytesize.Format(m.UnsustainedBytes))
		}
		hold := func(d float64) string {
			s := fmt.Sprintf("%.3g", 1e3*m.Hold(d, sizing.Risk))
			if m.FromGroup(d) {
				s += " (group)"
			}
			return s
		}
		burst := "—"
		if v := m.BurstBytes(sizing.DefaultSeconds, sizing.Risk); v > 0 {
			burst = fmt.Sprintf("%.0f", v/1e3)
		}
		cost := "—"
		if !math.IsNaN(m.ConsumerNs) {
			cost = num(m.ConsumerNs)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %s | %.3g | %.3g | %s | %s | %s | %d (%d), %.0f s | %d (%d) | %s–%s | %s |\n", m.Env, variantName(m), m.Consumer, m.RecordBytes, cost,
			m.Tail.Rate, 1e3*m.Tail.Scale, hold(60), hold(3600), burst, m.RunsFitted, m.Censored, m.Seconds, m.Fitted, m.NoDrops, num(m.Rates[0]), num(m.Rates[1]), unsus)
	}
	fmt.Fprintf(b, "\nH and B are at a %.0f%% chance of a drop. ", 100*sizing.Risk)
	fmt.Fprintf(b, "A one-hour capture is longer than any key's fitted runs together: its H is the fitted form's extrapolation.\n\n")
	writeValidation(b, sm)
}

// writeBursts writes the bursts fitted per environment.
func writeBursts(b *bytes.Buffer, sm SizingModel) {
	fmt.Fprintf(b, "| environment | bursts β (/s) | up to K (events) | δ (ms) | runs, their total length |\n|---|---|---|---|---|\n")
	for _, env := range sm.envs() {
		i := slices.IndexFunc(sm.Models, func(m sizing.Model) bool { return m.Env == env })
		m := sm.Models[i]
		if !m.Burst.Found() {
			fmt.Fprintf(b, "| %s | none found (β < %.2g) | — | — | %.0f s |\n", env, sizing.MinBurstRate, m.BurstSeconds)
			continue
		}
		fmt.Fprintf(b, "| %s | %.3g | %.0f | %.2g | %.0f s |\n", env, m.Burst.Rate, m.Burst.Bound, 1e3*m.Burst.Lasts, m.BurstSeconds)
	}
	fmt.Fprintln(b)
}

// shortSource drops the file and the benchmark's fixed prefix from a row
// source.
func shortSource(s string) string {
	if _, name, ok := strings.Cut(s, ": "); ok {
		s = name
	}
	return strings.TrimPrefix(s, "BenchmarkCapture/")
}

// splitSentence says which rows the model was fitted on and which it was
// checked on, and whether that split was declared before the rows were
// measured.
func splitSentence(sm SizingModel) string {
	if sm.HeldOutDeclared {
		return fmt.Sprintf("Fitted on the open loops of %s but the held-out ones, and the soak rows among them (runs of 6 s at 10,000 ops/s and 512 KiB "+
			"per CPU, which hold the bursts whole); held out: the open loops bench/plan declared held out before they were measured "+
			"(the results' `held-out:` line), the closed loops, the other placements' rates not fitted, and the other workloads.", FitWorkload)
	}
	return fmt.Sprintf("Fitted on the open loops of %s at every other rate of the grid (the lowest, the third) and the soak rows among them (runs of 6 s "+
		"at 10,000 ops/s and 512 KiB per CPU, which hold the bursts whole); held out: the rates between, the closed loops, the other placements' rates not fitted, "+
		"and the other workloads. That split was chosen after these rows were seen, and the model's form was revised after its scores on them "+
		"were seen, so the scores below are optimistic: these results predate the held-out rows bench/plan now declares (HeldOut).", FitWorkload)
}
