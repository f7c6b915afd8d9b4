package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/report"
	"github.com/slabbench/slabbench/results"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/vm"
)

func init() {
	register("size", "recommend buffer memory per path for an event rate, from the fitted sizing model", runSize)
}

// sizeFiles collects --results, which may be given more than once.
type sizeFiles []string

func (f *sizeFiles) String() string { return strings.Join(*f, ",") }
func (f *sizeFiles) Set(s string) error {
	if s == "" {
		return errors.New("empty file name")
	}
	*f = append(*f, s)
	return nil
}

// loadModel fits the sizing model on the results files given, or on the
// committed ones built into the binary.
func loadModel(files []string) (report.SizingModel, error) {
	var sections []*report.Section
	if len(files) > 0 {
		s, err := report.ReadFiles(files...)
		if err != nil {
			return report.SizingModel{}, fmt.Errorf("--results: %w", err)
		}
		sections = s
	} else {
		for _, name := range results.Names() {
			data, err := results.Read(name)
			if err != nil {
				return report.SizingModel{}, err
			}
			s, err := report.Read(bytes.NewReader(data), name)
			if err != nil {
				continue // a file without capture rows sizes nothing
			}
			sections = append(sections, s...)
		}
	}
	return report.FitModel(sections), nil
}

// sizePath is one path's answer, as --json prints it: the decision
// (sizing.Decide) and, where its verdict has one, the size.
type sizePath struct {
	Path        string `json:"path"`
	Wakeup      string `json:"wakeup,omitempty"`
	Consumer    string `json:"consumer"`
	Environment string `json:"environment"`
	// Verdict is sized, extrapolated, cannot-keep-up or no-model; Why
	// says what decided it when it is not sized.
	Verdict        string     `json:"verdict"`
	Why            string     `json:"why,omitempty"`
	PerCPUBytes    int        `json:"per_cpu_bytes,omitempty"`
	SubbufSize     int        `json:"subbuf_size,omitempty"`
	Subbufs        int        `json:"subbufs,omitempty"`
	WakeupBytes    int        `json:"wakeup_bytes,omitempty"`
	RingbufBytes   int        `json:"ringbuf_bytes,omitempty"`
	NeedBytes      float64    `json:"need_bytes,omitempty"`
	Margin         float64    `json:"margin,omitempty"`
	HoldMs         float64    `json:"hold_ms,omitempty"`       // the absence the buffer outlasts
	BurstBytes     float64    `json:"burst_bytes,omitempty"`   // the burst of other tasks' events it holds
	ConsumerLoad   float64    `json:"consumer_load,omitempty"` // ρ, where the model's form divides absences by 1 − ρ: the share of a CPU its consumer needs at the rate
	CPUShare       float64    `json:"cpu_share,omitempty"`     // (probe + consumer ns/event) × rate: the share of each CPU the capture takes
	RiskAt         float64    `json:"risk_at_size,omitempty"`  // the model's chance of a drop at per_cpu_bytes
	FittedSeconds  float64    `json:"fitted_s,omitempty"`
	ProbeNs        *float64   `json:"probe_ns_per_event"`
	ConsumerNs     *float64   `json:"consumer_ns_per_event"`
	OverheadNs     *float64   `json:"overhead_ns_per_event"`
	ValidatedRates [2]float64 `json:"validated_rates"`
	HeldOut        [2]int     `json:"held_out_correct"` // classified right, of
	// CostFrom and OverheadFrom are the results rows the costs come from.
	CostFrom     string `json:"cost_from,omitempty"`
	OverheadFrom string `json:"overhead_from,omitempty"`

	Model string `json:"model,omitempty"`
	// Rule is what chose the size: "model", or "nearest-clean" where
	// that rule scored better (CleanRule then holds its reasoning).
	Rule      string            `json:"rule,omitempty"`
	CleanRule *sizing.CleanRule `json:"nearest_clean,omitempty"`
	Flags     string            `json:"flags,omitempty"`
	// Scores are the Brier scores of the model and two baselines on the
	// environment's held-out open loops (sizing.Scores).
	Scores *sizing.Scores `json:"held_out_scores,omitempty"`
	// Calibration is what a calibrated answer stands on (Source
	// "calibration").
	Calibration *calibrationEvidence `json:"calibration,omitempty"`
}

type sizeAnswer struct {
	// Source is where the answer comes from: "calibration" (what
	// slabbench calibrate observed, Machine.File) or "benchmark-results"
	// (the sizing model fitted on results files).
	Source string `json:"source"`
	// Machine is where the model's rows were measured, ThisMachine where
	// size runs; SameMachine says whether they have the same CPU model,
	// CPU count and kernel.
	Machine     report.Machine `json:"machine"`
	ThisMachine report.Machine `json:"this_machine"`
	SameMachine bool           `json:"same_machine"`
	Rate        float64        `json:"rate"`
	// Seconds is the capture length sized for, Risk the chance of a drop
	// in it the model allows.
	Seconds float64    `json:"duration_s"`
	Risk    float64    `json:"risk"`
	Paths   []sizePath `json:"paths"`
}

func runSize(args []string) error {
	fs := flag.NewFlagSet("size", flag.ContinueOnError)
	rate := fs.Float64("rate", 0, "events/s per CPU to size for (required, > 0)")
	path := fs.String("path", "all", "relay, ringbuf, perfbuf or all")
	wakeup := fs.String("wakeup", "batched", "ring and perf buffer reader wakeup: every (record) or batched (once a sub-buffer of bytes is pending)")
	consumer := fs.String("consumer", "shared", "shared (the consumer shares the workload's CPUs) or pinned (a CPU of its own)")
	env := fs.String("env", "", "the environment whose results to use: native, vm-tcg, ... (default: the running one)")
	duration := fs.Duration("duration", time.Duration(sizing.DefaultSeconds)*time.Second, "how long the capture runs: longer captures meet longer absences of the consumer (1s to 720h)")
	var files sizeFiles
	fs.Var(&files, "results", "a results file to fit the model on (repeatable; default: this machine's calibration, else the committed results built into slabbench)")
	calibration := fs.String("calibration", "", "a file slabbench calibrate wrote, to answer from, or none (default: "+defaultCalibration+" when it was made on this machine)")
	observe := fs.Duration("observe", 0, "size for this machine's own traffic instead of --rate: capture what it does for this long per path (1s to 1h; with -- CMD ARGS, while the program runs, at most this long)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: slabbench size --rate EVENTS_PER_SEC_PER_CPU [--path relay|ringbuf|perfbuf|all] [--wakeup every|batched]\n"+
			"                      [--consumer shared|pinned] [--duration D] [--env ENV] [--calibration FILE | --results FILE...] [--json]\n"+
			"       slabbench size --observe D [--path ...] [--wakeup ...] [--duration D] [--json] [-- CMD ARGS]\n\n"+
			"With -- CMD ARGS, --observe runs the program on each path in turn and watches until it exits (or for D).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	command, err := commandArgs(fs, args, "size")
	if err != nil {
		return err
	}
	switch {
	case len(command) > 0 && *observe == 0:
		return fmt.Errorf("-- %s: a program to size for needs --observe D, the longest to watch it on each path (1s to 1h)", strings.Join(command, " "))
	case *observe != 0 && (*rate != 0 || *env != "" || len(files) > 0 || *calibration != ""):
		return fmt.Errorf("--observe sizes for the traffic it sees on this machine: give it without --rate, --env, --results and --calibration")
	case *observe != 0 && (*observe < time.Second || *observe > time.Hour):
		return fmt.Errorf("--observe %v: want 1s to 1h", *observe)
	case *observe == 0 && (!(*rate > 0) || math.IsInf(*rate, 0)):
		return fmt.Errorf("--rate %v: want events/s per CPU, a number > 0 (e.g. --rate 100000), or --observe D to size for this machine's traffic", *rate)
	case !slices.Contains([]string{"relay", "ringbuf", "perfbuf", "all"}, *path):
		return fmt.Errorf("--path %q: want relay, ringbuf, perfbuf or all", *path)
	case *wakeup != "every" && *wakeup != "batched":
		return fmt.Errorf("--wakeup %q: want every or batched", *wakeup)
	case *consumer != "shared" && *consumer != "pinned":
		return fmt.Errorf("--consumer %q: want shared or pinned", *consumer)
	case *duration < time.Second || *duration > 720*time.Hour:
		return fmt.Errorf("--duration %v: want the capture's length, 1s to 720h (e.g. --duration 10m)", *duration)
	}
	paths := []string{"relay", "ringbuf", "perfbuf"}
	if *path != "all" {
		paths = []string{*path}
	}
	if *observe != 0 {
		return sizeObserved(paths, *wakeup, *consumer, observation{length: *observe, command: command}, duration.Seconds(), *asJSON)
	}
	if *calibration != "" && *calibration != "none" && (len(files) > 0 || *env != "") {
		return fmt.Errorf("--calibration answers for the machine calibrated: give it without --results and --env")
	}
	if len(files) == 0 && *env == "" {
		c, ok, err := loadCalibration(*calibration, os.Stderr)
		if err != nil {
			return err
		}
		if ok {
			return printAnswer(sizeFromCalibration(c, paths, *wakeup, *consumer, *rate, duration.Seconds()), *consumer, *asJSON)
		}
	}
	return sizeFromResults(files, *env, paths, *wakeup, *consumer, *rate, duration.Seconds(), *asJSON)
}

// sizeFromResults answers from the sizing model fitted on the results
// files (the committed ones by default), for env or the running one.
func sizeFromResults(files []string, env string, paths []string, wakeup, consumer string, rate, seconds float64, asJSON bool) error {
	explicitEnv := env != ""
	if !explicitEnv {
		env = vm.Environment()
	}
	sm, err := loadModel(files)
	if err != nil {
		return err
	}
	// For the running environment, no model is a verdict per path (the
	// results may hold no open loops); a named one must exist.
	if envs := sm.Environments(); explicitEnv && !slices.Contains(envs, env) {
		have := strings.Join(envs, ", ")
		if have == "" {
			have = "none (a model is fitted on open loops that dropped nothing: BENCH=full make bench runs them)"
		}
		return fmt.Errorf("--env %s: no sizing model for that environment in the results; they have %s", env, have)
	}
	answer := sizeAnswer{Source: "benchmark-results", Rate: rate, Seconds: seconds, Risk: sizing.Risk,
		Machine: sm.MachineOf(env), ThisMachine: thisMachine()}
	answer.SameMachine = machineID{answer.Machine}.same(answer.ThisMachine)
	for _, p := range paths {
		answer.Paths = append(answer.Paths, sizeOne(sm, env, p, wakeup, consumer, rate, answer.Seconds))
	}
	return printAnswer(answer, consumer, asJSON)
}

// printAnswer writes the answer as one JSON object or readably.
func printAnswer(answer sizeAnswer, consumer string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(answer)
	}
	printSize(answer, consumer)
	return nil
}

// sizeOne formats the decision for one path in env.
func sizeOne(sm report.SizingModel, env, path, wakeup, consumer string, rate, seconds float64) sizePath {
	if path == "relay" {
		wakeup = "" // relay's reader sees finished sub-buffers only
	}
	a := sm.Answer(env, path, wakeup, consumer, rate, seconds)
	sp := sizePath{Path: path, Wakeup: wakeup, Consumer: consumer, Environment: env, Verdict: string(a.Verdict), Why: a.Why}
	if a.Verdict == sizing.VerdictNoModel {
		if path == "relay" && env == "native" {
			sp.Why = "no model natively: the relay module runs in the VM here, and so do its rows (slabbench size --env vm-tcg)"
		}
		return sp
	}
	m, r := a.Rec.Model, a.Rec
	sp.Environment = m.Env
	sp.CPUShare = a.CPUShare
	if !m.Form.NoLoad {
		sp.ConsumerLoad = m.Load(rate)
	}
	sp.setCost(a.Cost)
	sp.ValidatedRates[0], sp.ValidatedRates[1], sp.HeldOut[0], sp.HeldOut[1] = sm.Validation.Range(m)
	sp.Model = m.String()
	if sc := sm.EnvScores(m.Env); sc.Rows > 0 {
		sp.Scores = &sc
	}
	if !a.Verdict.HasSize() {
		return sp
	}
	sp.PerCPUBytes, sp.SubbufSize, sp.Subbufs, sp.WakeupBytes = r.PerCPUBytes, r.SubbufBytes, sizing.Subbufs, r.WakeupBytes
	sp.NeedBytes, sp.Margin, sp.BurstBytes = r.Need, r.Margin(), r.Burst
	sp.HoldMs, sp.RiskAt, sp.FittedSeconds = 1e3*r.Hold, r.RiskAt(), m.Exposure(rate, seconds)
	sp.Rule = ruleModel
	useBaseline(&sp, sm, m, rate)
	if path == "ringbuf" {
		sp.RingbufBytes = ringbufTotal(sp.PerCPUBytes, sm, m.Key)
	}
	sp.Flags = sizeFlags(path, sp.SubbufSize, sp.WakeupBytes)
	return sp
}

// sizeFlags is the capture flags of a size on path.
func sizeFlags(path string, subbuf, wakeupBytes int) string {
	return "--path " + path + " " + bufferFlags(subbuf, wakeupBytes)
}

// bufferFlags is the capture flags of a buffer: 4 sub-buffers of subbuf
// bytes, and --wakeup-bytes for a batched reader.
func bufferFlags(subbuf, wakeupBytes int) string {
	flags := fmt.Sprintf("--subbuf-size %s --subbufs %d", bytesize.Format(subbuf), sizing.Subbufs)
	if wakeupBytes > 0 {
		flags += " --wakeup-bytes " + bytesize.Format(wakeupBytes)
	}
	return flags
}

// What chose a path's size (sizePath.Rule).
const (
	ruleModel        = "model"
	ruleNearestClean = "nearest-clean"
)

// useBaseline replaces the model's size with the nearest-clean-size
// rule's where report.SizingModel.RuleSize says so (the report's answer
// decides the same way), and says so: a model that does not beat a rule
// of thumb is not the answer. The model's reasoning (hold, burst, its
// chance at the size) goes with it.
func useBaseline(sp *sizePath, sm report.SizingModel, m sizing.Model, rate float64) {
	sc := sp.Scores
	if sc == nil {
		return
	}
	r, ok := sm.RuleSize(*sc, m.Key, rate)
	if !ok {
		return
	}
	sp.Rule = ruleNearestClean
	sp.CleanRule = &r
	sp.NeedBytes = r.Need
	sp.PerCPUBytes, sp.SubbufSize = sizing.RoundUp(r.Need)
	// The cost of the row nearest the rule's memory, as the report's answer
	// takes it (report.SizingModel.Decision).
	sp.setCost(sizing.CostFor(sm.Observations, m.Key, sm.FitWorkload, rate, sp.PerCPUBytes))
	sp.Margin = sizing.Margin(sp.PerCPUBytes, r.Need)
	sp.HoldMs, sp.BurstBytes, sp.RiskAt = 0, 0, 0
	if sp.WakeupBytes > 0 {
		sp.WakeupBytes = sp.SubbufSize
	}
	sp.Why = fmt.Sprintf("the size is the nearest-clean-size rule's, "+
		"which forecast this environment's held-out open loops better than the model (Brier %.3f against %.3f)", sc.NearestClean, sc.Model)
}

// setCost sets the measured costs per event of the row c stands on.
func (sp *sizePath) setCost(c sizing.Cost) {
	sp.ProbeNs, sp.ConsumerNs, sp.OverheadNs = numOrNil(c.ProbeNs), numOrNil(c.ConsumerNs), numOrNil(c.OverheadNs)
	sp.CostFrom, sp.OverheadFrom = c.From, c.OverheadFrom
}

// ringbufTotal is the ring buffer for per-CPU memory: times the CPUs of
// the environment's results, rounded as the kernel requires.
func ringbufTotal(perCPU int, sm report.SizingModel, k sizing.Key) int {
	cpus := 1
	for _, o := range sm.Observations {
		if o.Key == k && o.CPUs > 0 {
			cpus = o.CPUs
		}
	}
	return bpftrace.RoundRingbufSize(perCPU * cpus)
}
