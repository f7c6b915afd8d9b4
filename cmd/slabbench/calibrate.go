package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/workloads"
)

func init() {
	register("calibrate", "measure this machine's buffer backlogs at two or more rates, for size to answer from", runCalibrate)
}

// defaultCalibration is where calibrate writes and size looks.
const defaultCalibration = "/var/lib/slabbench/calibration.txt"

// calibrationBuffer is the per-CPU memory of a calibration capture: large
// enough that nothing drops, so that every backlog is seen whole.
const calibrationBuffer = 8 << 20

// buildCommit is the commit bin/slabbench was built from (make sets it).
var buildCommit = "unknown"

// calibrateRun is calibrate's flags, checked.
type calibrateRun struct {
	paths       []capture.Path
	rates       []float64
	duration    time.Duration
	interval    time.Duration
	wakeup      string
	wakeupBytes int
	out         string
}

func runCalibrate(args []string) error {
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	paths := fs.String("paths", "ringbuf,perfbuf", "transports to calibrate, comma-separated: ringbuf, perfbuf")
	rates := fs.String("rates", "10000,100000", "events/s per CPU to measure at, comma-separated: two or more, each 100 to 10000000")
	duration := fs.Duration("duration", time.Minute, "how long each path is measured at each rate (5s to 1h): a capture up to this long is sized from what was seen")
	interval := fs.Duration("interval", 100*time.Millisecond, "how long one backlog sample covers (10ms to 10s)")
	wakeup := fs.String("wakeup", "batched", "reader wakeup: batched (once --wakeup-bytes are pending) or every (record)")
	wakeupBytes := bytesize.Flag{Bytes: samplingWakeupBytes}
	fs.Var(&wakeupBytes, "wakeup-bytes", "with --wakeup batched: bytes pending before the reader is woken (4KiB to 1MiB)")
	out := fs.String("out", defaultCalibration, "the calibration file to write (size reads "+defaultCalibration+" by default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: calibrate takes flags only (slabbench calibrate -h)", fs.Arg(0))
	}
	run, err := checkCalibrate(*paths, *rates, *duration, *interval, *wakeup, wakeupBytes.Bytes, *out)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run.run(ctx)
}

// checkCalibrate checks calibrate's flags; every error names the flag
// and what it accepts.
func checkCalibrate(paths, rates string, duration, interval time.Duration, wakeup string, wakeupBytes int, out string) (calibrateRun, error) {
	r := calibrateRun{duration: duration, interval: interval, wakeup: wakeup, out: out}
	for _, p := range strings.Split(paths, ",") {
		switch p {
		case "ringbuf", "perfbuf":
			r.paths = append(r.paths, capture.Path(p))
		case "relay":
			return r, fmt.Errorf("--paths relay: not calibrated yet (its module keeps the largest backlog only, not the backlog over time); want ringbuf, perfbuf")
		default:
			return r, fmt.Errorf("--paths %q: want ringbuf, perfbuf or both, comma-separated", p)
		}
	}
	for _, s := range strings.Split(rates, ",") {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 100 || v > 1e7 {
			return r, fmt.Errorf("--rates %q: want events/s per CPU, 100 to 10000000 each (e.g. --rates 10000,100000)", s)
		}
		r.rates = append(r.rates, v)
	}
	slices.Sort(r.rates)
	switch {
	case len(slices.Compact(slices.Clone(r.rates))) < 2:
		return r, fmt.Errorf("--rates %s: want two or more different rates, so that size sees how the backlog grows with the rate", rates)
	case duration < 5*time.Second || duration > time.Hour:
		return r, fmt.Errorf("--duration %v: want 5s to 1h per path and rate", duration)
	case interval < 10*time.Millisecond || interval > 10*time.Second || interval > duration/10:
		return r, fmt.Errorf("--interval %v: want 10ms to 10s, and at most a tenth of --duration", interval)
	case wakeup != "batched" && wakeup != "every":
		return r, fmt.Errorf("--wakeup %q: want batched or every", wakeup)
	case wakeup == "batched" && (wakeupBytes < 4<<10 || wakeupBytes > 1<<20):
		return r, fmt.Errorf("--wakeup-bytes %s: want 4KiB to 1MiB", bytesize.Format(wakeupBytes))
	case out == "":
		return r, fmt.Errorf("--out: want a file name")
	}
	if wakeup == "batched" {
		r.wakeupBytes = wakeupBytes
	}
	return r, nil
}

func (r calibrateRun) run(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(r.out), 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", r.out, err)
	}
	perOp, err := workloads.MeasureEventsPerOp(ctx, workloads.Config{Name: "openclose", Threads: 1, Ops: 3000})
	if err != nil {
		return fmt.Errorf("measuring openclose's events per op: %w", err)
	}
	var eventsPerOp float64
	for _, v := range perOp {
		eventsPerOp += v
	}
	if eventsPerOp < 1 {
		return fmt.Errorf("openclose made %.2f slab events per op here: too few to calibrate with", eventsPerOp)
	}
	n := len(r.paths) * len(r.rates)
	bar := newProgress(time.Duration(n)*r.duration, "calibrate")
	var series []sizing.BacklogSeries
	for _, p := range r.paths {
		for _, rate := range r.rates {
			s, err := r.series(ctx, p, rate, eventsPerOp, bar)
			if err != nil {
				bar.Exit()
				return err
			}
			series = append(series, s)
		}
	}
	bar.Finish()
	if err := r.write(series); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d series of %v (%s); slabbench size now answers from it on this machine\n", r.out, len(series), r.duration, calibrationSummary(series))
	return nil
}

// calibrationSummary is one short clause per series: its rate and the
// largest backlog it saw.
func calibrationSummary(series []sizing.BacklogSeries) string {
	var parts []string
	for _, s := range series {
		parts = append(parts, fmt.Sprintf("%s at %.0f events/s per CPU: largest backlog %s", s.Path, s.Rate, bytesize.Approx(s.Largest())))
	}
	return strings.Join(parts, "; ")
}

// series runs one calibration capture of openclose at rate events/s per
// CPU and samples the reader's backlog every interval while it runs.
func (r calibrateRun) series(ctx context.Context, path capture.Path, rate, eventsPerOp float64, bar *progressbar.ProgressBar) (sizing.BacklogSeries, error) {
	cpus := runtime.NumCPU()
	cfg := samplingConfig(path, r.wakeupBytes,
		workloads.Config{Name: "openclose", Threads: cpus, Duration: r.duration, Rate: rate * float64(cpus) / eventsPerOp})
	s, res, err := sampleBacklog(ctx, cfg, r.wakeup, r.interval, func() { bar.Add64(r.interval.Milliseconds()) })
	if err != nil {
		return s, fmt.Errorf("calibrate: %w", err)
	}
	switch {
	case !res.Verified:
		return s, fmt.Errorf("calibrate: %s at %.0f events/s per CPU: the accounting did not balance: %s", s.Path, rate, res.VerifyError)
	case res.Dropped > 0:
		return s, fmt.Errorf("calibrate: %s dropped %d events at %.0f events/s per CPU with %s per CPU: the reader cannot keep up there; lower --rates",
			s.Path, res.Dropped, rate, bytesize.Format(calibrationBuffer))
	case res.LatePercent > 20:
		return s, fmt.Errorf("calibrate: the workload ran %.0f%% of its ops late at %.0f events/s per CPU: this machine cannot offer that rate; lower --rates", res.LatePercent, rate)
	}
	return s, nil
}

// write writes the series as a benchfmt file: the machine's identity and
// how the numbers were made as configuration lines, one row per sample.
func (r calibrateRun) write(series []sizing.BacklogSeries) error {
	f, err := os.Create(r.out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	w := bufio.NewWriter(f)
	m := thisMachine()
	fmt.Fprintf(w, "cpu: %s\ncpus: %d\nkernel: %s\nenvironment: %s\ncommit: %s\ncalibrated: %s\n", m.CPU, m.CPUs, m.Kernel, m.Environment, buildCommit, time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "calibration: slabbench calibrate; each series captures openclose at a fixed rate (%d threads, the consumer sharing their CPUs, tracepoint programs, truth on) for %v with %s per CPU, which nothing filled; "+
		"one row per sample interval: %s = the most bytes one CPU's share of the buffer held unread when the reader took a record in that interval (ringbuf: producer - consumer position / CPUs; perfbuf: data_head - data_tail of one CPU); "+
		"%s = the capture's events (truth counter) / seconds / CPUs, %s = its busiest CPU's\n",
		runtime.NumCPU(), r.duration, bytesize.Format(calibrationBuffer), sizing.UnitBacklog, sizing.UnitRate, sizing.UnitBusiestRate)
	fmt.Fprintf(w, "Unit %s better=lower\n\n", sizing.UnitBacklog)
	for _, s := range series {
		name := fmt.Sprintf("Benchmark%s/path=%s/wakeup=%s/wakeup-bytes=%d/rate=%.0f/interval=%dms", sizing.CalibrationBench, s.Path, s.Wakeup, s.WakeupBytes, s.Rate, r.interval.Milliseconds())
		for _, b := range s.Backlog {
			fmt.Fprintf(w, "%s 1 %.0f %s %.0f %s %.0f %s\n", name, b, sizing.UnitBacklog, s.Rate, sizing.UnitRate, s.BusiestRate, sizing.UnitBusiestRate)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
