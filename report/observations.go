package report

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/sizing"
)

// Observations turns the capture rows of the transports (relay, ringbuf,
// perfbuf; the file's attach mode, Section.Attach) into the sizing model's input.
func (s *Section) Observations() []sizing.Observation {
	cpus, err := strconv.Atoi(s.ConfigValue("cpus"))
	if err != nil || cpus <= 0 {
		return nil
	}
	p, planned := s.plan()
	var obs []sizing.Observation
	for _, r := range s.Rows {
		path := r.Keys["path"]
		if r.Bench != "Capture" || (path != "relay" && path != "ringbuf" && path != "perfbuf") {
			continue
		}
		if a := r.Keys["attach"]; a != "" && a != s.Attach {
			continue
		}
		if s.LeftOut(r) != "" {
			continue
		}
		mem, ok := r.PerCPUBytes()
		_, n, _ := r.Geometry()
		rate, okRate := r.eventsPerSec()
		if !ok || !okRate {
			continue
		}
		producers, _ := strconv.Atoi(r.Keys["producers"])
		perCPU := sizing.PerCPURate(path, rate, producers, cpus)
		backlog := 0.0
		if m := r.Metric(UnitMaxBacklogB); m != nil {
			backlog = m.Max
		}
		if path == "ringbuf" {
			backlog /= float64(cpus) // one buffer for every CPU: its share
		}
		consumer := r.Keys["consumer"]
		if consumer == "" {
			consumer = "shared"
		}
		o := sizing.Observation{
			Key:      sizing.Key{Env: s.Environment + " " + s.Kernel, Path: path, Wakeup: r.Keys["wakeup"], Consumer: consumer},
			Workload: r.Keys["workload"], Rate: r.Keys["rate"], PerCPURate: perCPU,
			PerCPUBytes: mem, Subbufs: n, RecordBytes: event.RecordBytesIn(path), CPUs: cpus, Runs: r.Runs,
			NoDrops: r.zeroDropped(), SomeRunsKeptUp: r.someRunsDropped(), MaxBacklog: backlog,
			ProbeNs: median(r, UnitProbe), ConsumerNs: median(r, UnitConsumer), OverheadNs: median(r, UnitOverhead),
			Source: s.File + ": " + r.Name,
		}
		if m := r.Metric(UnitLost); m != nil {
			o.LostPct = m.Median
		}
		if ops, err := strconv.ParseFloat(r.Keys["rate"], 64); err == nil && planned && o.Workload == p.Workloads[0] {
			o.HeldOut = p.IsHeldOut(ops)
		}
		unit := r.opsUnit()
		for _, run := range r.PerRun(UnitDropped, UnitMaxBacklogB, "events/op", unit, Iterations, "ns/op") {
			b := run[1]
			if path == "ringbuf" {
				b /= float64(cpus)
			}
			o.PerRun = append(o.PerRun, sizing.Run{Dropped: run[0] > 0, Backlog: b,
				PerCPURate: sizing.PerCPURate(path, run[2]*opsPerSec(unit, run[3]), producers, cpus),
				Seconds:    run[4] * run[5] / 1e9})
		}
		obs = append(obs, o)
	}
	return obs
}

// eventsPerSec is the row's events/s over all CPUs: events/op times
// ops/s, which an open loop reports and a closed loop's ns/op implies.
func (r *Row) eventsPerSec() (float64, bool) {
	ev, ok := r.Median("events/op")
	if !ok {
		return 0, false
	}
	unit := r.opsUnit()
	if ops, ok := r.Median(unit); ok && (unit != "ns/op" || ops > 0) {
		return ev * opsPerSec(unit, ops), true
	}
	return 0, false
}

// opsUnit is the metric a row's ops/s come from: achieved-ops/s, which an
// open loop reports, or else ns/op, which implies it.
func (r *Row) opsUnit() string {
	if r.Metric("achieved-ops/s") != nil {
		return "achieved-ops/s"
	}
	return "ns/op"
}

// opsPerSec turns a value of opsUnit into ops/s.
func opsPerSec(unit string, v float64) float64 {
	if unit == "ns/op" {
		return 1e9 / v
	}
	return v
}

func median(r *Row, unit string) float64 {
	if v, ok := r.Median(unit); ok {
		return v
	}
	return math.NaN()
}

// FitWorkload is the workload the sizing model is fitted on; the others
// are held out.
const FitWorkload = "openclose"

// SizingModel is the sizing model fitted on the sections' rows and
// checked on the held-out rest (sizing.Set), and where its rows were
// measured.
type SizingModel struct {
	sizing.Set
	// Machines holds where each environment's rows were measured, by
	// the models' Env (environment and kernel).
	Machines map[string]Machine
}

// FitModel fits and validates the sizing model over the sections.
func FitModel(sections []*Section) SizingModel {
	machines := map[string]Machine{}
	var obs []sizing.Observation
	var missed []sizing.MissedTarget
	for _, s := range sections {
		// Only the levels with open-loop grids are the model's data.
		if p, ok := s.plan(); ok && p.RateGrids == nil {
			continue
		}
		obs = append(obs, s.Observations()...)
		missed = append(missed, s.missedTargets()...)
		machines[s.Environment+" "+s.Kernel] = s.Machine()
	}
	return SizingModel{Set: sizing.FitSet(obs, missed, FitWorkload), Machines: machines}
}

// zeroDropped says whether every run of the row reported dropped-% and
// every one was 0: the buffer was never full.
func (r *Row) zeroDropped() bool {
	m := r.Metric(UnitDropped)
	return m != nil && m.N() == r.Runs && m.Max == 0
}

// someRunsDropped says whether some runs of the row dropped and others
// did not.
func (r *Row) someRunsDropped() bool {
	m := r.Metric(UnitDropped)
	return m != nil && m.Min == 0 && m.Max > 0
}

// missedTargets lists the section's open-loop capture rows of the model's
// attach mode whose every run was skipped below its target. Their target
// in events/s per CPU takes events/op from the workload's rows that ran.
func (s *Section) missedTargets() []sizing.MissedTarget {
	cpus, err := strconv.Atoi(s.ConfigValue("cpus"))
	if err != nil || cpus <= 0 {
		return nil
	}
	ran := map[string]bool{}
	eventsPerOp := map[string]float64{}
	for _, r := range s.Rows {
		ran[r.Name] = true
		if ev, ok := r.Median("events/op"); ok && r.Bench == "Capture" && eventsPerOp[r.Keys["workload"]] == 0 {
			eventsPerOp[r.Keys["workload"]] = ev
		}
	}
	var out []sizing.MissedTarget
	for name, reasons := range s.Skipped {
		// A row taken out for runs it lost met its target in some.
		if ran[name] || !slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, "below target") }) ||
			slices.ContainsFunc(reasons, func(r string) bool { return strings.HasPrefix(r, RemovedReason) }) {
			continue
		}
		keys := nameKeys(name)
		ops, err := strconv.ParseFloat(keys["rate"], 64)
		ev := eventsPerOp[keys["workload"]]
		if err != nil || ev == 0 || keys["attach"] != s.Attach {
			continue
		}
		consumer := cmp.Or(keys["consumer"], "shared")
		producers, _ := strconv.Atoi(keys["producers"])
		out = append(out, sizing.MissedTarget{
			Key:        sizing.Key{Env: s.Environment + " " + s.Kernel, Path: keys["path"], Wakeup: keys["wakeup"], Consumer: consumer},
			PerCPURate: sizing.PerCPURate(keys["path"], ops*ev, producers, cpus),
			Source:     s.File + ": " + name,
		})
	}
	return out
}

// nameKeys returns the key=value parts of a benchmark row name.
func nameKeys(name string) map[string]string {
	keys := map[string]string{}
	for _, p := range strings.Split(name, "/")[1:] {
		if k, v, ok := strings.Cut(p, "="); ok {
			keys[k] = v
		}
	}
	return keys
}
