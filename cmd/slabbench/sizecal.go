package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/sizing"
)

// calibrationEvidence is what a calibrated answer stands on, per path.
type calibrationEvidence struct {
	// LargestBytes is the largest per-CPU backlog the series at the
	// calibrated rate nearest the asked one saw, in ObservedSeconds, at
	// Rate events/s per CPU (BusiestRate on its busiest CPU).
	LargestBytes    float64   `json:"largest_backlog_bytes"`
	ObservedSeconds float64   `json:"observed_s"`
	Rate            float64   `json:"rate"`
	BusiestRate     float64   `json:"busiest_cpu_rate"`
	Rates           []float64 `json:"calibrated_rates"`
	// HalfBytes is half the recommended per-CPU memory and HalfRisk the
	// chance of a drop the same samples give it (0: below the smallest).
	HalfBytes int     `json:"half_per_cpu_bytes,omitempty"`
	HalfRisk  float64 `json:"half_risk,omitempty"`
}

// loadCalibration reads the calibration size answers from: file if given
// (an error if it cannot be read; "none": no calibration), else the
// default one if it was made on this machine (saying so on warn if it was
// another's). ok is false when there is none to use.
func loadCalibration(file string, warn io.Writer) (c sizing.Calibration, ok bool, err error) {
	if file == "none" {
		return c, false, nil
	}
	explicit := file != ""
	if !explicit {
		file = defaultCalibration
	}
	f, err := os.Open(file)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return c, false, nil
		}
		return c, false, fmt.Errorf("--calibration: %w", err)
	}
	defer f.Close()
	c, err = sizing.ReadCalibration(f, file)
	if err != nil {
		return c, false, fmt.Errorf("--calibration: %w (slabbench calibrate writes it again)", err)
	}
	if !explicit && !calibrationMachine(c).same(thisMachine()) {
		fmt.Fprintf(warn, "size: %s was calibrated on another machine (%s); answering from the benchmark results. slabbench calibrate measures this one.\n",
			file, calibrationMachine(c).describe())
		return c, false, nil
	}
	return c, true, nil
}

// hereCalibration is this machine's calibration for a capture's hint, or
// nil: none, another machine's, or unreadable (the hint then answers from
// the sizing model).
func hereCalibration() *sizing.Calibration {
	c, ok, err := loadCalibration("", io.Discard)
	if err != nil || !ok {
		return nil
	}
	return &c
}

// calibrationMachine is the machine a calibration was made on.
func calibrationMachine(c sizing.Calibration) machineID {
	cpus, _ := strconv.Atoi(c.Config["cpus"])
	return machineID{report.Machine{File: c.File, Environment: c.Config["environment"], CPU: c.Config["cpu"], CPUs: cpus,
		Kernel: c.Config["kernel"], Commit: c.Config["commit"]}}
}

// machineID adds the comparisons size needs to report.Machine.
type machineID struct{ report.Machine }

func (m machineID) same(o report.Machine) bool {
	return m.SameHardware(o) && m.Kernel == o.Kernel && m.Environment == o.Environment
}

func (m machineID) describe() string {
	return fmt.Sprintf("%s, %d CPUs, kernel %s, %s", m.CPU, m.CPUs, m.Kernel, m.Environment)
}

// sizeFromCalibration answers for every path from what calibrate
// observed on this machine.
func sizeFromCalibration(c sizing.Calibration, paths []string, wakeup, consumer string, rate, seconds float64) sizeAnswer {
	m := calibrationMachine(c)
	a := sizeAnswer{Source: "calibration", Rate: rate, Seconds: seconds, Risk: sizing.Risk, Machine: m.Machine, ThisMachine: thisMachine()}
	a.SameMachine = m.same(a.ThisMachine)
	for _, p := range paths {
		a.Paths = append(a.Paths, sizeCalibrated(c, p, wakeup, consumer, rate, seconds))
	}
	return a
}

// sizeCalibrated is one path's calibrated answer.
func sizeCalibrated(c sizing.Calibration, path, wakeup, consumer string, rate, seconds float64) sizePath {
	sp := sizePath{Path: path, Wakeup: wakeup, Consumer: consumer, Environment: c.Config["environment"]}
	if path == "relay" {
		sp.Wakeup = ""
	}
	if consumer != "shared" {
		sp.Verdict, sp.Why = string(sizing.VerdictNoModel), "calibrate measures the consumer sharing the workload's CPUs only: drop --consumer, or size from the benchmark results (--results)"
		return sp
	}
	o, ok := c.Answer(path, wakeup, rate, seconds)
	if !ok {
		sp.Verdict, sp.Why = string(sizing.VerdictNoModel), fmt.Sprintf("not calibrated here with wakeup %s: slabbench calibrate --paths %s --wakeup %s", wakeup, path, wakeup)
		if path == "relay" {
			sp.Why = "not calibrated: calibrate measures ringbuf and perfbuf (relay's module keeps the largest backlog only)"
		}
		return sp
	}
	sp.Verdict = string(sizing.VerdictSized)
	if o.Extrapolated != "" {
		sp.Verdict, sp.Why = string(sizing.VerdictExtrapolated), o.Extrapolated
	}
	sp.PerCPUBytes, sp.SubbufSize, sp.Subbufs, sp.WakeupBytes = o.PerCPUBytes, o.SubbufBytes, sizing.Subbufs, o.WakeupBytes
	sp.NeedBytes, sp.Margin = o.Need, sizing.Margin(o.PerCPUBytes, o.Need)
	if path == "ringbuf" {
		cpus, _ := strconv.Atoi(c.Config["cpus"])
		sp.RingbufBytes = bpftrace.RoundRingbufSize(o.PerCPUBytes * max(cpus, 1))
	}
	sp.Flags = sizeFlags(path, o.SubbufBytes, o.WakeupBytes)
	sp.Calibration = &calibrationEvidence{LargestBytes: o.Nearest.Largest(), ObservedSeconds: o.Nearest.Seconds(),
		Rate: o.Nearest.Rate, BusiestRate: o.Nearest.BusiestRate, Rates: o.Rates, HalfBytes: o.HalfBytes, HalfRisk: o.HalfRisk}
	return sp
}

// printCalibrated writes a calibrated or observed path's flags, where it
// has a size, and what they stand on.
func printCalibrated(p sizePath) {
	e := p.Calibration
	if p.PerCPUBytes > 0 {
		printFlags(os.Stdout, p)
	}
	calibrated := ""
	if len(e.Rates) > 1 {
		calibrated = "; calibrated at " + rateList(e.Rates)
	}
	fmt.Printf("  observed: a largest backlog of %s per CPU in %.0f s at %s events/s per CPU (busiest CPU %s)%s\n",
		bytesize.Approx(e.LargestBytes), e.ObservedSeconds, report.RateLabel(e.Rate), report.RateLabel(e.BusiestRate), calibrated)
	if p.PerCPUBytes > 0 {
		fmt.Printf("  needs %s per CPU for a %.0f%% chance of a drop; margin %.2fx (rounded up to a power of two)\n",
			bytesize.Approx(p.NeedBytes), 100*sizing.Risk, p.Margin)
	}
	if p.PerCPUBytes > 0 && e.HalfBytes > 0 {
		fmt.Printf("  half that, %s per CPU: a %s chance of a drop in the same capture, from the same samples\n",
			bytesize.Format(e.HalfBytes), percent(e.HalfRisk))
	}
}

func rateList(rates []float64) string {
	labels := make([]string, len(rates))
	for i, r := range rates {
		labels[i] = report.RateLabel(r)
	}
	return strings.Join(labels, ", ") + " events/s per CPU"
}
