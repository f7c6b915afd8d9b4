package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/vm"
)

// lossHint says what to change when a capture lost events: for drops, the
// rate per CPU it measured and the size for it, from this machine's
// calibration (cal returns it, or nil; read only for drops) where it has
// one for the capture's path, else from the sizing model; for misses,
// that they are not a buffer problem.
func lossHint(r capture.Result, cal func() *sizing.Calibration) string {
	var parts []string
	if r.Dropped > 0 {
		parts = append(parts, dropHint(r, cal()))
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

func dropHint(r capture.Result, cal *sizing.Calibration) string {
	rate := perCPURate(r)
	lead := fmt.Sprintf("dropped %.3g%% at %s events/s per CPU (the buffer was full)", lostPct(r.Captured, r.Dropped), report.RateLabel(rate))
	generic := lead + ": a bigger buffer (--subbuf-size, --subbufs) or a batched reader (--wakeup-bytes)"
	k := captureKey(r)
	secs := max(float64(r.DurationNs)/1e9, 1)
	if rate <= 0 {
		return generic
	}
	if r.PollNs > 0 {
		return pollDropHint(r, lead, rate)
	}
	if h, ok := calibratedDropHint(r, cal, k, lead, rate, secs); ok {
		return h
	}
	env := vm.Environment()
	sm, err := loadModel(nil)
	if err != nil {
		return generic
	}
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
	why := ""
	if a.Verdict == sizing.VerdictExtrapolated {
		why = a.Why
	}
	return lead + trySize(bufferFlags(rec.SubbufBytes, rec.WakeupBytes), rec.PerCPUBytes, why, "", rate, k.Path, secs)
}

// trySize is a drop hint's advice: the flags, the memory per CPU, how the
// size goes beyond what was measured (extrapolated, "" if not), where it
// comes from ("" for the model) and the size command that says more.
func trySize(flags string, perCPU int, extrapolated, from string, rate float64, path string, secs float64) string {
	notes := ""
	if extrapolated != "" {
		notes = ", extrapolated: " + extrapolated
	}
	if from != "" {
		notes += "; " + from
	}
	return fmt.Sprintf(": try %s (%s per CPU%s; slabbench size --rate %.0f --path %s --duration %.0fs)",
		flags, bytesize.Format(perCPU), notes, rate, path, secs)
}

// calibratedDropHint answers a drop from this machine's calibration, when
// it has a series of the capture's path and wakeup with the consumer
// sharing the workload's CPUs (what calibrate measures).
func calibratedDropHint(r capture.Result, cal *sizing.Calibration, k sizing.Key, lead string, rate, secs float64) (string, bool) {
	if cal == nil || k.Consumer != "shared" {
		return "", false
	}
	o, ok := cal.Answer(k.Path, k.Wakeup, rate, secs)
	if !ok {
		return "", false
	}
	from := fmt.Sprintf("this machine's calibration (%s) saw a largest backlog of %s per CPU in %.0f s at %s events/s per CPU",
		cal.File, bytesize.Approx(o.Nearest.Largest()), o.Nearest.Seconds(), report.RateLabel(o.Nearest.Rate))
	if have := r.SubbufSize * r.NumSubbufs; o.PerCPUBytes <= have {
		return lead + fmt.Sprintf(": %s, and gives %s per CPU for a capture this long (%.0f s), which this one had (%s): "+
			"a burst came that the calibration did not see; calibrate longer (slabbench calibrate --duration), try twice the memory, or a batched reader (--wakeup-bytes)",
			from, bytesize.Format(o.PerCPUBytes), secs, bytesize.Format(have)), true
	}
	return lead + trySize(bufferFlags(o.SubbufBytes, o.WakeupBytes), o.PerCPUBytes, o.Extrapolated, from, rate, k.Path, secs), true
}

// pollDropHint is the drop hint of a reader that polls (--poll): the
// sizing model has no polling rows, but what one interval leaves waiting
// is known.
func pollDropHint(r capture.Result, lead string, rate float64) string {
	d := time.Duration(r.PollNs)
	perLook := rate * d.Seconds() * float64(event.RecordBytesIn(string(r.Path)))
	return fmt.Sprintf("%s: a reader polling every %v finds about %.0f KiB per CPU waiting at this rate, and more when it looks late; "+
		"give the buffer several times that (--subbuf-size, --subbufs) or poll more often (--poll); the sizing model has no polling rows to size it from",
		lead, d, perLook/1024)
}
