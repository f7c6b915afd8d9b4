package report

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/sizing"
)

// ModelAttach is the attach mode the sizing model is fitted on; the
// others change the probe's cost, not how far the consumer falls behind.
const ModelAttach = "tracepoint"

// Observations turns the capture rows of the transports (relay, ringbuf,
// perfbuf; tracepoint attachment) into the sizing model's input.
func (s *Section) Observations() []sizing.Observation {
	cpus, err := strconv.Atoi(s.ConfigValue("cpus"))
	if err != nil || cpus <= 0 {
		return nil
	}
	var obs []sizing.Observation
	for _, r := range s.Rows {
		path := r.Keys["path"]
		if r.Bench != "Capture" || (path != "relay" && path != "ringbuf" && path != "perfbuf") {
			continue
		}
		if a := r.Keys["attach"]; a != "" && a != ModelAttach {
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
			PerCPUBytes: mem, Subbufs: n, RecordBytes: capture.Path(path).RecordBytes(), CPUs: cpus, Runs: r.Runs,
			NoDrops: r.zeroDropped(), SomeRunsKeptUp: r.someRunsDropped(), MaxBacklog: backlog,
			ProbeNs: median(r, UnitProbe), ConsumerNs: median(r, UnitConsumer), OverheadNs: median(r, UnitOverhead),
			Source: s.File + ": " + r.Name,
		}
		if m := r.Metric(UnitLost); m != nil {
			o.LostPct = m.Median
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
// checked on the held-out rest (sizing.Split).
type SizingModel struct {
	Observations []sizing.Observation
	Fitted, Held []sizing.Observation
	Models       []sizing.Model
	Validation   sizing.Validation
}

// FitModel fits and validates the sizing model over the sections.
func FitModel(sections []*Section) SizingModel {
	var sm SizingModel
	for _, s := range sections {
		// Only the levels with open-loop grids are the model's data.
		if p, ok := s.plan(); ok && p.RateGrids == nil {
			continue
		}
		sm.Observations = append(sm.Observations, s.Observations()...)
	}
	sm.Fitted, sm.Held = sizing.Split(sm.Observations, FitWorkload)
	sm.Models = sizing.Fit(sm.Fitted)
	sm.Validation = sizing.Validate(sm.Models, sm.Held)
	return sm
}

// envName is the environment of a key without its kernel: "native".
func envName(k sizing.Key) string {
	e, _, _ := strings.Cut(k.Env, " ")
	return e
}

// ModelFor returns the model of path, wakeup and consumer in the
// environment env ("native", "vm-tcg"; any kernel).
func (sm SizingModel) ModelFor(env, path, wakeup, consumer string) (sizing.Model, bool) {
	for _, m := range sm.Models {
		if envName(m.Key) == env && m.Path == path && m.Wakeup == wakeup && m.Consumer == consumer {
			return m, true
		}
	}
	return sizing.Model{}, false
}

// Environments lists the environments (without kernel) that have models.
func (sm SizingModel) Environments() []string {
	var envs []string
	for _, m := range sm.Models {
		if e := envName(m.Key); !slices.Contains(envs, e) {
			envs = append(envs, e)
		}
	}
	return envs
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
