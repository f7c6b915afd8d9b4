package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/size"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/workloads"
)

var matrix plan.Plan

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	if matrix, err = plan.For(os.Getenv("BENCH")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		printConfig()
	}
	os.Exit(m.Run())
}

// Environment says where the benchmarks run: native, or vm-tcg / vm-kvm
// inside slabbench's VM (which sets SLABBENCH_ENVIRONMENT).
func Environment() string {
	if e := os.Getenv("SLABBENCH_ENVIRONMENT"); e != "" {
		return e
	}
	return "native"
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// printConfig writes benchfmt configuration lines, which apply to every
// result after them, and the units' directions for benchstat.
func printConfig() {
	lines := []string{
		"kernel: " + kernelRelease(),
		"environment: " + Environment(),
		fmt.Sprintf("cpus: %d", runtime.NumCPU()),
		"bench-level: " + matrix.Level,
		fmt.Sprintf("threads: %d", matrix.Threads),
		"truth: on for relay, ringbuf and perfbuf rows (every hit reads the kernel's counting perf event, included in overhead); off for empty rows",
		"relay-memory: subbuf x n per CPU",
		"perfbuf-memory: subbuf x n per CPU, rounded up to a power of two pages",
		fmt.Sprintf("ringbuf-rounding: subbuf x n x %d CPUs, rounded up to a power of two", runtime.NumCPU()),
		"wakeup: every = wake the reader for every record (ringbuf: the kernel's default, which wakes when the reader has caught up; perfbuf: wakeup_events = 1); batched = wake once one sub-buffer of bytes is pending (ringbuf: BPF_RB_NO_WAKEUP/FORCE_WAKEUP; perfbuf: watermark = subbuf); relay wakes a waiting reader (through irq_work) when it switches sub-buffers",
		"perf-record-memory: subbuf x n per CPU (-m, rounded up to a power of two pages)",
		"perf-record-check: hits while the workload ran <= captured + lost <= hits around perf start and stop (perf has no in-band window); consumer time excludes perf start-up",
		"overhead: paired in every row: b.N ops with no probe attached before the capture and again after it (timer off), baseline-ns/op = their mean per op; overhead-ns/event = (ns/op - baseline-ns/op) / events/op, per run; empty rows report overhead-ns/op the same way; closed loop only; the consumer thread shares the CPUs with the workload threads, so its CPU time is part of the overhead; ns/op is wall time with the workload threads running in parallel, so CPU time per event (probe-ns/event) compares with overhead-ns/event x threads",
		"truth-cost: BenchmarkTruthCost runs the same capture with truth=on and truth=off; with truth=off events/op is the probes' own attempts (captured + lost)",
		"loss: lost-% = dropped-% (the probe ran and the buffer was full) + missed (the kernel counted the hit and did not run the probe: BPF recursion protection); missed-events is a count per run",
		"backlog: max-backlog-B = the most written-but-unread bytes of one buffer (relay: max-backlog sub-buffers x sub-buffer size, from the module; ringbuf: producer - consumer position, perfbuf: data_head - data_tail of one CPU, when the reader took a record)",
		"wakeups: wakeups/kevent = polls the consumer returned from with data ready, per 1000 captured records",
		"reader: ringbuf and perfbuf rows read the buffers' mappings directly (bpftrace ringReader, perfReader: in-place decode, consumer position published per record, poll only when empty), as relay rows do (relay walker); BenchmarkConsumer measures these and cilium/ebpf's readers",
		"probe: probe-ns/event = time inside the probes / probe runs, measured in the kernel: BPF run-time statistics (BPF_ENABLE_STATS run_time_ns / run_cnt, on for every eBPF row, which adds the kernel's clock reads around each run); the module's local_clock around its pre and emit probes (module parameter probe_time, on for every relay row); empty rows report their own",
		"lag: lag-p50-us, lag-p99-us, lag-max-us = time from each captured record's ts_ns (CLOCK_MONOTONIC, stamped in the probe) to the consumer's read of it, over every captured record (HdrHistogram, 2 significant digits); the consumer pays one clock read per record for it",
		"rate: open-loop rows report achieved-ops/s (ops / workload time) and late-% (ops that started more than one interval behind schedule); a row below 95% of its target logs 'below target' and is not evidence for that rate",
	}
	if err := relaytrace.Available(""); err != nil {
		lines = append(lines, "relay: rows skipped here: "+err.Error())
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	for _, u := range []string{"events/op better=higher", "lost-% better=lower", "overhead-ns/event better=lower",
		"consumer-ns/event better=lower", "captured-MB/s better=higher", "buffer-B better=lower",
		"max-backlog better=lower", "events/s better=higher", "ns/event better=lower",
		"dropped-% better=lower", "missed-events better=lower", "lag-p50-us better=lower", "lag-p99-us better=lower",
		"lag-max-us better=lower", "achieved-ops/s better=higher", "late-% better=lower", "baseline-ns/op better=lower", "probe-ns/event better=lower", "max-backlog-B better=lower", "wakeups/kevent better=lower"} {
		fmt.Println("Unit " + u)
	}
}

// progress shows finished rows and an estimate of what is left on stderr,
// when SLABBENCH_PROGRESS=1 (make bench sets it and keeps stderr apart from
// the results; under go test the two streams are merged).
var (
	progressOnce sync.Once
	bar          *progressbar.ProgressBar
)

func rowDone(total int) {
	if os.Getenv("SLABBENCH_PROGRESS") != "1" {
		return
	}
	progressOnce.Do(func() {
		count := 1
		if f := flag.Lookup("test.count"); f != nil {
			fmt.Sscan(f.Value.String(), &count)
		}
		// testing runs each leaf once with b.N = 1, then, unless
		// -benchtime is 1x, again with the real b.N (more often with a
		// time-based -benchtime, which the estimate then undercounts).
		callsPerRow := 2
		if f := flag.Lookup("test.benchtime"); f != nil && f.Value.String() == "1x" {
			callsPerRow = 1
		}
		bar = progressbar.NewOptions(total*count*callsPerRow,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("benchmarks"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }),
			progressbar.OptionThrottle(500*time.Millisecond))
	})
	bar.Add(1)
}

func BenchmarkCapture(b *testing.B) {
	testenv.RequireRoot(b)
	total := matrix.CaptureRows()
	for _, wl := range matrix.Workloads {
		b.Run("workload="+wl, func(b *testing.B) {
			for _, rate := range matrix.Rates {
				b.Run("rate="+plan.RateName(rate), func(b *testing.B) {
					benchRate(b, wl, rate, total)
				})
			}
		})
	}
}

func benchRate(b *testing.B, wl string, rate float64, total int) {
	wcfg := workloads.Config{Name: wl, Threads: matrix.Threads, Rate: rate}
	leaf := func(name string, f func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			defer rowDone(total)
			f(b)
		})
	}
	leaf("path=none", func(b *testing.B) { timeWorkload(b, wcfg) })
	geoms := matrix.RateGeometries
	if rate == 0 {
		geoms = matrix.Geometries
		for _, a := range matrix.Attaches {
			leaf("path=empty-bpf/attach="+string(a), func(b *testing.B) {
				benchEmptyBPF(b, wcfg, a)
			})
		}
		leaf("path=empty-kmod", func(b *testing.B) { benchEmptyKmod(b, wcfg) })
	}
	for gi, g := range geoms {
		geo := fmt.Sprintf("subbuf=%s/n=%d", size.Format(g.SubbufSize), g.NumSubbufs)
		base := capture.Config{Kinds: event.AllKinds, Truth: true, Workload: wcfg,
			SubbufSize: g.SubbufSize, NumSubbufs: g.NumSubbufs, ProbeTime: true}
		leaf("path=relay/"+geo, func(b *testing.B) {
			if err := relaytrace.Available(""); err != nil {
				b.Skip("relay: ", err)
			}
			cfg := base
			cfg.Path = capture.PathRelay
			benchCapture(b, cfg)
		})
		// The BPF transports, each attach mode and reader wakeup; batched
		// wakes the reader once a sub-buffer of bytes is pending (ringbuf:
		// the program's wakeup threshold; perfbuf: the watermark).
		for _, path := range []capture.Path{capture.PathRingbuf, capture.PathPerfbuf} {
			for _, a := range matrix.Attaches {
				for _, wake := range matrix.Wakeups {
					leaf(fmt.Sprintf("path=%s/attach=%s/wakeup=%s/%s", path, a, wake, geo), func(b *testing.B) {
						cfg := base
						cfg.Path, cfg.Attach = path, a
						if wake == "batched" {
							cfg.WakeupBytes = g.SubbufSize
						}
						benchCapture(b, cfg)
					})
				}
			}
		}
		if matrix.PerfRecordRows(gi) {
			leaf("path=perf-record/"+geo, func(b *testing.B) {
				benchPerfRecord(b, wcfg, g)
			})
		}
	}
}

// noneSegment runs b.N ops of wcfg with no probe attached and the
// benchmark timer off: one half of a row's paired baseline.
func noneSegment(b *testing.B, wcfg workloads.Config) time.Duration {
	b.StopTimer()
	wcfg.Ops = int64(b.N)
	wr, err := workloads.Run(context.Background(), wcfg)
	if err != nil {
		b.Fatal(err)
	}
	return wr.Elapsed
}

// pairedBase is the baseline ns/op of a row: the mean of its none
// segments before and after the measured one.
func pairedBase(b *testing.B, before, after time.Duration) float64 {
	base := float64((before + after).Nanoseconds()) / 2 / float64(b.N)
	b.ReportMetric(base, "baseline-ns/op")
	return base
}

// timeWorkload runs b.N ops of wcfg with the benchmark timer on around
// the workload alone.
func timeWorkload(b *testing.B, wcfg workloads.Config) workloads.Result {
	wcfg.Ops = int64(b.N)
	b.ResetTimer()
	b.StartTimer() // a none segment may have stopped it
	wr, err := workloads.Run(context.Background(), wcfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	return wr
}

// benchCapture times b.N workload ops under one capture, checks the
// accounting and reports the metrics.
func benchCapture(b *testing.B, cfg capture.Config) {
	// Start checks the workload it will run, so it needs the op count.
	cfg.Workload.Ops = int64(b.N)
	before := noneSegment(b, cfg.Workload)
	s, err := capture.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	wr := timeWorkload(b, s.Workload())
	res, err := s.Finish(wr)
	if err != nil {
		b.Fatal(err)
	}
	base := pairedBase(b, before, noneSegment(b, cfg.Workload))
	if !res.Verified {
		b.Fatalf("accounting check failed, nothing reported: %s", res.VerifyError)
	}
	events := res.Truth
	if !cfg.Truth {
		// No truth counter: the probes' own attempts (== captured + lost,
		// checked by Verify) are the event count.
		events = res.Captured + res.Lost
	}
	report(b, res.Captured, res.Lost, events, wr.Elapsed, wr.Elapsed, res.ConsumerCPUNs, res.BufferBytes, base, cfg.Workload.Rate)
	reportCapture(b, res)
	if cfg.Path == capture.PathRelay {
		b.ReportMetric(float64(res.MaxBacklog), "max-backlog")
	}
}

// reportCapture writes what only the in-band capture paths know: loss by
// cause, delivery lag, and the rate an open loop reached.
func reportCapture(b *testing.B, res capture.Result) {
	if all := res.Captured + res.Lost; all > 0 {
		b.ReportMetric(100*float64(res.Dropped)/float64(all), "dropped-%")
	}
	b.ReportMetric(float64(res.Missed), "missed-events")
	reportProbeTime(b, res.ProbeRuns, res.ProbeNs)
	if res.MaxBacklogBytes > 0 {
		b.ReportMetric(float64(res.MaxBacklogBytes), "max-backlog-B")
	}
	if res.Wakeups > 0 && res.Captured > 0 {
		b.ReportMetric(1000*float64(res.Wakeups)/float64(res.Captured), "wakeups/kevent")
	}
	if res.Lag.N > 0 {
		b.ReportMetric(res.Lag.P50Us, "lag-p50-us")
		b.ReportMetric(res.Lag.P99Us, "lag-p99-us")
		b.ReportMetric(res.Lag.MaxUs, "lag-max-us")
	}
	if res.TargetOpsPerSec > 0 {
		b.ReportMetric(res.AchievedOpsPerSec, "achieved-ops/s")
		b.ReportMetric(res.LatePercent, "late-%")
		if res.AchievedOpsPerSec < 0.95*res.TargetOpsPerSec {
			b.Logf("below target: reached %.0f of %.0f ops/s (%.0f%%): not evidence for this rate",
				res.AchievedOpsPerSec, res.TargetOpsPerSec, 100*res.AchievedOpsPerSec/res.TargetOpsPerSec)
		}
	}
}

// report writes the common metrics. events is what the kernel counted
// (truth), so events/op does not depend on loss.
// window is the span the captured records came from (the workload's, or
// perf's whole recording window).
func report(b *testing.B, captured, lost, events uint64, elapsed, window time.Duration, consumerNs int64, bufferBytes int, base, rate float64) {
	n := float64(b.N)
	b.ReportMetric(float64(events)/n, "events/op")
	if captured+lost > 0 {
		b.ReportMetric(100*float64(lost)/float64(captured+lost), "lost-%")
	}
	if rate == 0 && events > 0 {
		nsPerOp := float64(elapsed.Nanoseconds()) / n
		b.ReportMetric((nsPerOp-base)/(float64(events)/n), "overhead-ns/event")
	}
	if captured > 0 {
		b.ReportMetric(float64(consumerNs)/float64(captured), "consumer-ns/event")
	}
	if secs := window.Seconds(); secs > 0 {
		b.ReportMetric(float64(captured)*float64(event.RecordSize)/secs/1e6, "captured-MB/s")
	}
	b.ReportMetric(float64(bufferBytes), "buffer-B")
}

// reportProbeTime writes the time spent inside the probes per run, as
// the kernel measured it.
func reportProbeTime(b *testing.B, runs, ns uint64) {
	if runs > 0 {
		b.ReportMetric(float64(ns)/float64(runs), "probe-ns/event")
	}
}

// emptyProbe is a capture whose probes return at once.
type emptyProbe interface {
	ProbeTime() (runs uint64, total time.Duration, err error)
	Close() error
}

// benchEmptyBPF attaches programs that return at once: the floor of any
// BPF capture.
func benchEmptyBPF(b *testing.B, wcfg workloads.Config, a bpftrace.Attach) {
	benchEmpty(b, wcfg, func() (emptyProbe, error) {
		return bpftrace.Open(bpftrace.Config{Transport: bpftrace.Ringbuf, Attach: a, Kinds: event.AllKinds,
			RingbufSize: 4096, Empty: true, ProbeTime: true})
	})
}

// benchEmptyKmod loads the module with probes that return at once: the
// floor of the relay path.
func benchEmptyKmod(b *testing.B, wcfg workloads.Config) {
	if err := relaytrace.Available(""); err != nil {
		b.Skip("relay: ", err)
	}
	benchEmpty(b, wcfg, func() (emptyProbe, error) {
		return relaytrace.Open(relaytrace.Config{Kinds: event.AllKinds, Empty: true, ProbeTime: true})
	})
}

// benchEmpty times the workload with the empty probes open attached,
// between its paired no-probe segments.
func benchEmpty(b *testing.B, wcfg workloads.Config, open func() (emptyProbe, error)) {
	before := noneSegment(b, wcfg)
	c, err := open()
	if err != nil {
		b.Fatal(err)
	}
	elapsed := timeWorkload(b, wcfg).Elapsed
	runs, total, err := c.ProbeTime()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	reportFloor(b, elapsed, pairedBase(b, before, noneSegment(b, wcfg)))
	reportProbeTime(b, runs, uint64(total.Nanoseconds()))
}

// reportFloor reports the overhead of an empty probe per op (it counts
// no events of its own).
func reportFloor(b *testing.B, elapsed time.Duration, base float64) {
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)-base, "overhead-ns/op")
}
