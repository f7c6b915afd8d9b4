package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/vm"
	"github.com/slabbench/slabbench/workloads"
)

var matrix plan.Plan

func TestMain(m *testing.M) {
	flag.Parse()
	var err error
	matrix, err = plan.For(os.Getenv("BENCH"))
	if err == nil {
		matrix, err = matrix.Narrow(os.Getenv("BENCH_WORKLOADS"), os.Getenv("BENCH_GROUP"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		printConfig()
	}
	os.Exit(m.Run())
}

// commit is the source the benchmarks were built from, as scripts/bench.sh
// passes it (git describe --always --dirty).
func commit() string {
	if c := os.Getenv("SLABBENCH_COMMIT"); c != "" {
		return c
	}
	return "unknown (scripts/bench.sh records it)"
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
		"environment: " + vm.Environment(),
		"commit: " + commit(),
		fmt.Sprintf("cpus: %d", runtime.NumCPU()),
		"bench-level: " + matrix.Level,
		"placement: producers=N runs N workload threads, one pinned to each CPU in turn; consumer=shared leaves the consumer thread unpinned on the same CPUs, consumer=pinned pins it to the last CPU and the workload to the others (the kernel's ring buffer benchmarks' setup)",
		fmt.Sprintf("steady-state: every row runs b.N ops, ramped up by the testing package until the timed part lasts -benchtime (%s here), the calls that cannot be the reported one (the first, b.N = 1; in an open loop, those whose ops end on schedule before 80%% of -benchtime; in a closed loop, those whose ops took the workload alone at most 1/100 of -benchtime in the row's round before, since the testing package grows the next round at most 100-fold) timing the workload with no probe attached, to save the probe's set-up; a capture row also has to write %g times its buffer (written-x-buffer = captured records x the bytes each takes in that buffer, header and alignment included / buffer-B; perf-record: perf.data bytes / buffer-B), or it is skipped with the reason; open-loop rows below 95%% of their target rate are skipped too", flag.Lookup("test.benchtime").Value.String(), matrix.SteadyFactor),
		"truth: on for relay, ringbuf and perfbuf rows (every hit reads the kernel's counting perf event, included in overhead); off for empty rows",
		"relay-memory: subbuf x n per CPU",
		"perfbuf-memory: subbuf x n per CPU, rounded up to a power of two pages",
		fmt.Sprintf("ringbuf-rounding: subbuf x n x %d CPUs, rounded up to a power of two", runtime.NumCPU()),
		"wakeup: every = wake the reader for every record (ringbuf: the kernel's default, which wakes when the reader has caught up; perfbuf: wakeup_events = 1); batched = wake once one sub-buffer of bytes is pending (ringbuf: BPF_RB_NO_WAKEUP/FORCE_WAKEUP, the pending bytes looked at each time a CPU has written 1/16 of a sub-buffer more, so up to that much per CPU late; perfbuf: watermark = subbuf); relay wakes a waiting reader (through irq_work) when it switches sub-buffers",
		"perf-record-memory: subbuf x n per CPU (-m, rounded up to a power of two pages)",
		"perf-record-check: hits while the workload ran <= captured + lost <= hits around perf start and stop (perf has no in-band window); consumer time excludes perf start-up",
		"overhead: paired in every closed-loop row: b.N/2 ops with no probe attached before the capture and the other b.N/2 after it (timer off), baseline-ns/op = their time per op; overhead-ns/event = (ns/op - baseline-ns/op) / events/op, per run; empty rows report overhead-ns/op the same way; open-loop rows have no baseline (their ops take as long as their schedule); the consumer thread shares the CPUs with the workload threads, so its CPU time is part of the overhead; ns/op is wall time with the workload threads running in parallel, so CPU time per event (probe-ns/event) compares with overhead-ns/event x threads",
		"parts: BenchmarkProbeParts runs parts of the eBPF capture program (probe-ns/event each): part=empty returns at once; part=floor writes a zeroed 80-byte record (ringbuf reserve + submit, perfbuf output); part=fill fills it; part=accounted adds the per-CPU accounting and sequence numbers (truth=on: and the truth stamp, whose price per event the report takes from these two rows; truth=off: the probes' own attempts are the reference, and events/op counts them); part=capture is the whole capture with its wakeup policy (wakeup=poll: a reader that looks every 1 ms and is never woken, --poll); the part rows never wake their reader, which polls every 1 ms, and have 64 MiB of buffer; floor and fill rows check records read == program runs, accounted rows the accounting",
		"loss: lost-% = dropped-% (the probe ran and the buffer was full) + missed (the kernel counted the hit and did not run the probe: BPF recursion protection); missed-events is a count per run",
		"backlog: max-backlog-B = the most written-but-unread bytes of one buffer (relay: max-backlog sub-buffers x sub-buffer size, from the module; ringbuf: producer - consumer position, perfbuf: data_head - data_tail of one CPU, when the reader took a record)",
		"wakeups: wakeups/kevent = polls the consumer returned from with data ready, per 1000 captured records",
		"reader: ringbuf and perfbuf rows read the buffers' mappings directly (bpftrace ringReader, perfReader: in-place decode, consumer position published every 1/16 of the buffer (at most 4 KiB) and whenever the reader catches up, poll only when empty), as relay rows do (relay Capture: its sub-buffer walker, the consumed position told to the module per sub-buffer); BenchmarkConsumer times each capture's ReadInto (one op = one record, sequence tracking included; relay in the VM, over records the module wrote) and cilium/ebpf's readers against a floor (copy: the same 80-byte records in the ring buffer's layout, copied out and decoded); lag=stamped rows add what the capture's consumer does with each record besides reading it, its lag stamp (capture.LagRecorder)",
		"probe: probe-ns/event = time inside the probes / probe runs, measured in the kernel: BPF run-time statistics (BPF_ENABLE_STATS run_time_ns / run_cnt, on for every eBPF row, which adds the kernel's clock reads around each run); the module's local_clock around its pre and emit probes (module parameter probe_time, on for every relay row); empty rows report their own",
		"lag: lag-p50-us, lag-p99-us, lag-max-us = time from each captured record's ts_ns (CLOCK_MONOTONIC, stamped in the probe) to the consumer's read of it, over every captured record (HdrHistogram, 2 significant digits); the consumer reads the clock once per 16 records and after each wait of slabbench's readers (per record for cilium/ebpf's, which do not count their waits), so a record's read time can be taken up to 15 records' reading early, never before a wait",
		"rate: open-loop rows report achieved-ops/s (ops / workload time) and late-% (ops that started more than one interval behind schedule); a run below 95% of its target is skipped ('below target'), and so is one with late-% above " + fmt.Sprint(plan.MaxLatePercent) + " ('off schedule')",
		runsLine(),
	}
	if l := matrix.HeldOutLine(); l != "" {
		lines = append(lines, "held-out: "+l)
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
		"lag-max-us better=lower", "written-x-buffer better=higher", "achieved-ops/s better=higher", "late-% better=lower", "baseline-ns/op better=lower", "probe-ns/event better=lower", "max-backlog-B better=lower", "wakeups/kevent better=lower"} {
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

// rowLimit is how long one run of a row may take before watchRow gives
// up on the whole run: the slowest rows (the VM's long group) take well
// under a minute, and a hung row would otherwise stall `make bench` until
// its outer timeout, with nothing to say why.
const rowLimit = 5 * time.Minute

// watchRow ends the process if b's run outlasts rowLimit, after writing
// the row's name and every goroutine's stack to stderr. Call the returned
// function when the run is over.
func watchRow(b *testing.B) func() {
	name := b.Name()
	t := time.AfterFunc(rowLimit, func() {
		fmt.Fprintf(os.Stderr, "\n%s: still running after %v: giving up; goroutines:\n", name, rowLimit)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		os.Exit(3)
	})
	return func() { t.Stop() }
}

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
		// -benchtime is 1x, again with the real b.N; with a duration it
		// ramps b.N up, 100 times at most per call: about 4 calls here.
		callsPerRow := 4
		switch v := flag.Lookup("test.benchtime").Value.String(); {
		case v == "1x":
			callsPerRow = 1
		case strings.HasSuffix(v, "x"):
			callsPerRow = 2
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
	if total == 0 {
		b.Skipf("BENCH=%s has no rows in BENCH_GROUP=%s", matrix.Level, matrix.Group)
	}
	for _, wl := range matrix.Workloads {
		// A workload without rows in this group would be timed as a
		// row of its own, as an empty rate level would.
		if !slices.ContainsFunc(matrix.RatesOf(wl), matrix.RateHasRows) {
			continue
		}
		b.Run("workload="+wl, func(b *testing.B) {
			for _, rate := range matrix.RatesOf(wl) {
				// A benchmark without sub-benchmarks is timed as one:
				// only levels with rows in this group are created.
				if !matrix.RateHasRows(rate) {
					continue
				}
				b.Run("rate="+plan.RateName(rate), func(b *testing.B) {
					for pl, place := range matrix.Placements {
						if !matrix.HasRows(pl, rate) {
							continue
						}
						b.Run(place.Name(), func(b *testing.B) {
							benchPlacement(b, wl, rate, pl, total)
						})
					}
				})
			}
		})
	}
}

// placedWorkload is the workload of a placement: its producers, pinned
// away from the consumer's CPU (the last usable one) when it is pinned.
func placedWorkload(b *testing.B, wl string, rate float64, place plan.Placement) (workloads.Config, int) {
	wcfg := workloads.Config{Name: wl, Threads: place.Producers, Rate: rate}
	if !place.Pinned {
		return wcfg, -1
	}
	cpus, err := workloads.UsableCPUs()
	if err != nil {
		b.Fatal(err)
	}
	if len(cpus) < 2 {
		b.Skipf("consumer=pinned needs 2 usable CPUs, this process has %v", cpus)
	}
	consumer := cpus[len(cpus)-1]
	wcfg.CPUs = cpus[:len(cpus)-1]
	return wcfg, consumer
}

// row is one leaf's setting: the placed workload and, when pinned, the
// consumer's CPU (-1: shared).
type row struct {
	wcfg        workloads.Config
	consumerCPU int
}

func benchPlacement(b *testing.B, wl string, rate float64, pl int, total int) {
	place := matrix.Placements[pl]
	leaf := func(name string, g plan.Geometry, f func(b *testing.B, r row)) {
		if !matrix.InGroup(rate, g) {
			return
		}
		b.Run(name, func(b *testing.B) {
			defer rowDone(total)
			defer watchRow(b)()
			var r row
			r.wcfg, r.consumerCPU = placedWorkload(b, wl, rate, place)
			f(b, r)
		})
	}
	none := plan.Geometry{}
	leaf("path=none", none, func(b *testing.B, r row) { timeWorkload(b, r.wcfg) })
	if rate == 0 {
		for _, a := range matrix.AttachesUsed(pl, rate) {
			leaf("path=empty-bpf/attach="+string(a), none, func(b *testing.B, r row) { benchEmptyBPF(b, r.wcfg, a) })
		}
		if matrix.Runs("empty-kmod") {
			leaf("path=empty-kmod", none, func(b *testing.B, r row) { benchEmptyKmod(b, r.wcfg) })
		}
	}
	for gi, g := range matrix.GeometriesAt(pl, rate) {
		geo := fmt.Sprintf("subbuf=%s/n=%d", bytesize.Format(g.SubbufSize), g.NumSubbufs)
		config := func(r row, path capture.Path) capture.Config {
			cfg := capture.Config{Path: path, Kinds: event.AllKinds, Truth: true, Workload: r.wcfg,
				SubbufSize: g.SubbufSize, NumSubbufs: g.NumSubbufs, ProbeTime: true}
			if r.consumerCPU >= 0 {
				cfg.PinConsumer, cfg.ConsumerCPU = true, r.consumerCPU
			}
			return cfg
		}
		if matrix.Runs("relay") {
			leaf("path=relay/"+geo, g, func(b *testing.B, r row) {
				if err := relaytrace.Available(""); err != nil {
					b.Skip("relay: ", err)
				}
				benchCapture(b, config(r, capture.PathRelay))
			})
		}
		// The BPF transports, each attach mode and reader wakeup; batched
		// wakes the reader once a sub-buffer of bytes is pending (ringbuf:
		// the program's wakeup threshold; perfbuf: the watermark).
		for _, path := range []capture.Path{capture.PathRingbuf, capture.PathPerfbuf} {
			for _, a := range matrix.AttachesAt(pl, rate, g) {
				for _, wake := range matrix.WakeupsAt(rate) {
					leaf(fmt.Sprintf("path=%s/attach=%s/wakeup=%s/%s", path, a, wake, geo), g, func(b *testing.B, r row) {
						cfg := config(r, path)
						cfg.Attach = a
						if wake == "batched" {
							cfg.WakeupBytes = g.SubbufSize
						}
						benchCapture(b, cfg)
					})
				}
			}
		}
		if pl == 0 && matrix.PerfRecordRows(rate, gi) {
			leaf("path=perf-record/"+geo, g, func(b *testing.B, r row) { benchPerfRecord(b, r.wcfg, g) })
		}
	}
}

// noneSegment runs ops of wcfg with no probe attached and the benchmark
// timer off: one half of a row's paired baseline.
func noneSegment(b *testing.B, wcfg workloads.Config, ops int) time.Duration {
	b.StopTimer()
	if ops == 0 {
		return 0
	}
	wcfg.Ops = int64(ops)
	wr, err := workloads.Run(context.Background(), wcfg)
	if err != nil {
		b.Fatal(err)
	}
	return wr.Elapsed
}

// pairedBase is the baseline ns/op of a row: its none segments, b.N/2 ops
// before the measured one and the rest after it, per op.
func pairedBase(b *testing.B, before, after time.Duration) float64 {
	base := float64((before + after).Nanoseconds()) / float64(b.N)
	b.ReportMetric(base, "baseline-ns/op")
	return base
}

// lastRound says whether the framework stops ramping b.N up after this
// call, so that its metrics are the ones reported: with a -benchtime
// duration, once the timed part lasted that long; with Nx, at b.N = N.
func lastRound(b *testing.B) bool {
	v := flag.Lookup("test.benchtime").Value.String()
	if n, ok := strings.CutSuffix(v, "x"); ok {
		want, err := strconv.Atoi(n)
		return err != nil || b.N >= want
	}
	d, err := time.ParseDuration(v)
	return err != nil || b.Elapsed() >= d
}

// pacingRound says that this call's metrics cannot be the ones reported,
// so that a row may time its workload alone instead of setting up its
// probe (the set-up dominates a row's time under the VM, and each call
// of each -count pays it): the first call (b.N = 1), which the testing
// package follows with another unless -benchtime is 1x; in an open loop
// at rate, a call whose ops end on schedule well before -benchtime; in a
// closed loop, a call whose ops took the workload alone at most 1/100 of
// -benchtime in the row's last pacing round: the testing package grows
// the next call to at most 100 times this one's ops, so that call is the
// same whether this one ran with the probe or without.
func pacingRound(b *testing.B, rate float64) bool {
	v := flag.Lookup("test.benchtime").Value.String()
	if n, ok := strings.CutSuffix(v, "x"); ok {
		want, err := strconv.Atoi(n)
		return err == nil && b.N < want
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 100*time.Millisecond {
		return false
	}
	if b.N == 1 {
		return true
	}
	if rate > 0 {
		return float64(b.N) < 0.8*rate*d.Seconds()
	}
	ns, ok := alonePerOp[b.Name()]
	return ok && float64(b.N)*ns <= float64(d.Nanoseconds())/100
}

// alonePerOp is each row's ns per op with its workload alone in its
// latest pacing round (rows run one at a time, so no lock).
var alonePerOp = map[string]float64{}

// paced runs a pacing round, if this call is one (pacingRound): it times
// the workload alone, for the testing package's next b.N, and says so.
// Should that round be the last after all (an open loop whose ops ran so
// late that it lasted -benchtime), the row is below its target, as
// requireRate would have said.
func paced(b *testing.B, wcfg workloads.Config) bool {
	if !pacingRound(b, wcfg.Rate) {
		return false
	}
	wr := timeWorkload(b, wcfg)
	alonePerOp[b.Name()] = float64(wr.Elapsed.Nanoseconds()) / float64(b.N)
	if lastRound(b) {
		b.Skipf("below target: %d ops (rate %s) took %v with no probe attached, so the round to report has none",
			b.N, plan.RateName(wcfg.Rate), wr.Elapsed.Round(time.Millisecond))
	}
	return true
}

// requireSteady reports written-x-buffer and, in the reported round,
// skips a row that wrote less than matrix.SteadyFactor times its buffer:
// its loss and backlog would describe filling an empty buffer, not
// keeping up with a full one.
func requireSteady(b *testing.B, written uint64, bufferBytes int) {
	if bufferBytes <= 0 {
		return
	}
	x := float64(written) / float64(bufferBytes)
	if f := matrix.SteadyFactor; f > 0 && x < f && lastRound(b) {
		b.Skipf("not steady: wrote %.1f times its %s buffer in %v, want %g: a longer -benchtime (BENCH_GROUP=long) or a smaller buffer",
			x, bytesize.Format(bufferBytes), b.Elapsed().Round(time.Millisecond), f)
	}
	b.ReportMetric(x, "written-x-buffer")
}

// requireRate skips an open-loop row, in the reported round, that
// reached less than 95% of its target, or whose ops started late more
// than plan.MaxLatePercent of the time: either way it is not evidence for that
// rate.
func requireRate(b *testing.B, achieved, target, latePct float64) {
	if target <= 0 || !lastRound(b) || matrix.SteadyFactor <= 0 {
		return
	}
	if achieved < 0.95*target {
		b.Skipf("below target: reached %.0f of %.0f ops/s (%.0f%%), not evidence for this rate",
			achieved, target, 100*achieved/target)
	}
	if latePct > plan.MaxLatePercent {
		b.Skipf("off schedule: %.0f%% of ops started more than one interval late (at most %d%%), so arrivals were burstier than %.0f ops/s",
			latePct, plan.MaxLatePercent, target)
	}
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
	if paced(b, cfg.Workload) {
		return
	}
	// Start checks the workload it will run, so it needs the op count.
	cfg.Workload.Ops = int64(b.N)
	// Overhead is a closed-loop figure: an open loop's ops take as long
	// as its schedule, so it gets no baseline.
	closed := cfg.Workload.Rate == 0
	var before time.Duration
	if closed {
		before = noneSegment(b, cfg.Workload, b.N/2)
	}
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
	var base float64
	if closed {
		base = pairedBase(b, before, noneSegment(b, cfg.Workload, b.N-b.N/2))
	}
	if !res.Verified {
		b.Fatalf("accounting check failed, nothing reported: %s", res.VerifyError)
	}
	requireSteady(b, res.WrittenBytes, res.BufferBytes)
	requireRate(b, res.AchievedOpsPerSec, res.TargetOpsPerSec, res.LatePercent)
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
	if paced(b, wcfg) {
		return
	}
	before := noneSegment(b, wcfg, b.N/2)
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
	reportFloor(b, elapsed, pairedBase(b, before, noneSegment(b, wcfg, b.N-b.N/2)))
	reportProbeTime(b, runs, uint64(total.Nanoseconds()))
}

// reportFloor reports the overhead of an empty probe per op (it counts
// no events of its own).
func reportFloor(b *testing.B, elapsed time.Duration, base float64) {
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)-base, "overhead-ns/op")
}

// runsLine is the results' runs: line. BENCH_ROUNDS is set by
// scripts/bench.sh for a group it runs that many times with -count 1, so
// that rows compared with each other are measured in turn, not minutes
// apart.
func runsLine() string {
	if r := os.Getenv("BENCH_ROUNDS"); r != "" {
		return "runs: " + r + " per row, interleaved: scripts/bench.sh ran the group " + r + " times with -count 1, every row once a round; it runs a row that lost a run to a rule again whole (-count " + r + "), and takes out of the file one still short after three tries"
	}
	return "runs: " + flag.Lookup("test.count").Value.String() + " per row (go test -count); scripts/bench.sh runs a row that lost a run to a rule again whole, and takes out of the file one still short after three tries"
}
