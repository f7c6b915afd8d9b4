package main

import (
	"fmt"
	"strings"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/vm"
)

// lossHint says what to change when a capture lost events: for drops, the
// rate per CPU it measured and what the sizing model recommends there;
// for misses, that they are not a buffer problem.
func lossHint(r capture.Result) string {
	var parts []string
	if r.Dropped > 0 {
		parts = append(parts, dropHint(r))
	}
	if r.Missed > 0 {
		parts = append(parts, fmt.Sprintf("missed %d: the kernel counted these events but did not run the probe, "+
			"because another BPF program was running on that CPU (recursion protection; most often a free in an interrupt); "+
			"that is not the buffer: no size or reader changes it (the relay module does not skip events)", r.Missed))
	}
	return strings.Join(parts, "; ")
}

// captureKey is the sizing model's key of a capture: its path, reader
// wakeup and consumer placement, here.
func captureKey(r capture.Result) sizing.Key {
	k := sizing.Key{Path: string(r.Path), Consumer: "shared"}
	switch {
	case r.Path == capture.PathRelay:
	case r.WakeupBytes > 0:
		k.Wakeup = "batched"
	default:
		k.Wakeup = "every"
	}
	if r.ConsumerCPU >= 0 {
		k.Consumer = "pinned"
	}
	return k
}

// perCPURate is the events/s per CPU a capture saw, spread as the model
// spreads them (its workload threads run one per CPU).
func perCPURate(r capture.Result) float64 {
	secs := float64(r.DurationNs) / 1e9
	if secs <= 0 {
		return 0
	}
	return sizing.PerCPURate(string(r.Path), float64(r.Captured+r.Lost)/secs, r.Threads, r.CPUs)
}

func dropHint(r capture.Result) string {
	rate := perCPURate(r)
	lead := fmt.Sprintf("dropped %.3g%% at %s events/s per CPU (the buffer was full)", lostPct(r.Captured, r.Dropped), report.RateLabel(rate))
	generic := lead + ": a bigger buffer (--subbuf-size, --subbufs) or a batched reader (--wakeup-bytes)"
	k := captureKey(r)
	env := vm.Environment()
	sm, err := loadModel(nil)
	if err != nil || rate <= 0 {
		return generic
	}
	secs := max(float64(r.DurationNs)/1e9, 1)
	a := sm.Answer(env, k.Path, k.Wakeup, k.Consumer, rate, secs)
	from := sm.MachineOf(env)
	if !from.SameHardware(thisMachine()) {
		lead += fmt.Sprintf(" (the sizing model is another machine's: %s, %d CPUs)", from.CPU, from.CPUs)
	}
	rec := a.Rec
	have := r.SubbufSize * r.NumSubbufs
	switch {
	case a.Verdict == sizing.VerdictNoModel:
		return generic + fmt.Sprintf("; the committed results have no sizing model for %s (slabbench size)", k)
	case a.Verdict == sizing.VerdictCannotKeepUp:
		return lead + fmt.Sprintf(": in the benchmarks (%s) %s: the consumer cannot keep up, which no buffer fixes; "+
			"try a batched reader (--wakeup-bytes) or a consumer CPU of its own (--consumer-cpu)", rec.Env, a.Why)
	case rec.PerCPUBytes <= have:
		return lead + fmt.Sprintf(": the sizing model (%s) gives %s per CPU a %s chance of a drop in a capture this long (%.0f s), and this capture had %s: "+
			"its consumer was away longer, or another task's burst of slab events was larger, than the model expects; try twice the memory, a batched reader (--wakeup-bytes) or a consumer CPU of its own (--consumer-cpu)",
			rec.Env, bytesize.Format(rec.PerCPUBytes), percent(rec.RiskAt()), secs, bytesize.Format(have))
	}
	flags := fmt.Sprintf("--subbuf-size %s --subbufs %d", bytesize.Format(rec.SubbufBytes), sizing.Subbufs)
	if rec.WakeupBytes > 0 {
		flags += " --wakeup-bytes " + bytesize.Format(rec.WakeupBytes)
	}
	mark := ""
	if a.Verdict == sizing.VerdictExtrapolated {
		mark = ", extrapolated: " + a.Why
	}
	return lead + fmt.Sprintf(": try %s (%s per CPU%s; slabbench size --rate %.0f --path %s --duration %.0fs)", flags, bytesize.Format(rec.PerCPUBytes), mark, rate, k.Path, secs)
}
