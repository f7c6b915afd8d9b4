package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/bytesize"
)

func init() {
	register("capture", "capture slab events on one path and check them against the kernel's count", runCapture)
}

func runCapture(args []string) error {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	cf := addCaptureFlags(fs, "openclose")
	events := fs.String("events", "kmalloc,kfree,kmem_cache_alloc,kmem_cache_free", "comma-separated kmem events")
	duration := fs.Duration("duration", 0, "how long to run: with --ops 0 (default 2s), or a limit on --ops")
	overwrite := fs.Bool("overwrite", false, "relay: flight-recorder mode (overwrite the oldest sub-buffer)")
	truthFlag := fs.String("truth", "on", "check against the kernel's own count: on or off")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	command, err := commandArgs(fs, args, "capture")
	if err != nil {
		return err
	}
	if *duration == 0 && *cf.ops == 0 && command == nil {
		*duration = 2 * time.Second // with -- CMD: until it exits
	}
	kinds, err := event.ParseKinds(*events)
	if err != nil {
		return fmt.Errorf("--events: %w", err)
	}
	if *truthFlag != "on" && *truthFlag != "off" {
		return fmt.Errorf("--truth %q: use on or off", *truthFlag)
	}
	cfg, err := cf.config(kinds, *truthFlag == "on", *duration)
	if err != nil {
		return err
	}
	if command != nil {
		cfg.Command = command
		if !flagGiven(fs, "workload") {
			cfg.Workload.Name = "none" // not the flag's default: Validate refuses a workload beside -- CMD
		}
	}
	cfg.Overwrite = *overwrite
	if err := cfg.Validate(); err != nil {
		return err
	}

	// Ctrl-C cancels the workload; Run then detaches and unloads
	// everything before returning.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := capture.Run(ctx, cfg)
	interrupted := ctx.Err() != nil && errors.Is(err, context.Canceled)
	if err != nil && !interrupted {
		return err
	}
	// Ctrl-C ends the window early: everything is already detached and
	// unloaded; report what was captured up to then.
	hint := lossHint(res, hereCalibration)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		out := struct {
			capture.Result
			Hint string `json:"hint,omitempty"`
		}{res, hint}
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printSummary(res)
		if hint != "" {
			fmt.Printf("hint: %s\n", hint)
		}
	}
	if !res.Verified {
		return fmt.Errorf("accounting check failed: %s", res.VerifyError)
	}
	if interrupted {
		fmt.Fprintln(os.Stderr, "slabbench capture: interrupted; probes detached")
		return exitError{code: 130}
	}
	return nil
}

func printSummary(r capture.Result) {
	secs := float64(r.DurationNs) / 1e9
	threads := "threads"
	if r.Threads == 1 {
		threads = "thread"
	}
	if r.Command != "" {
		fmt.Printf("path %s, attach %s, workload -- %s (exit status %d; -1: stopped at --duration) over %.3fs on %d CPUs\n",
			r.Path, r.Attach, r.Command, r.CommandExit, secs, r.CPUs)
	} else {
		fmt.Printf("path %s, attach %s, workload %s (%d ops, %d %s) over %.3fs on %d CPUs\n",
			r.Path, r.Attach, r.Workload, r.Ops, r.Threads, threads, secs, r.CPUs)
	}
	fmt.Printf("buffer %s in all (sub-buffer %s x %d)\n", bytesize.Format(r.BufferBytes), bytesize.Format(r.SubbufSize), r.NumSubbufs)
	if r.ConsumerCPU >= 0 {
		fmt.Printf("consumer pinned to CPU %d, workload on the other CPUs\n", r.ConsumerCPU)
	}
	fmt.Printf("%-18s %12s %12s %12s %12s %8s\n", "event", "captured", "dropped", "missed", "truth", "lost-%")
	for _, k := range event.AllKinds {
		kr, ok := r.Kinds[k.String()]
		if !ok {
			continue
		}
		fmt.Printf("%-18s %12d %12d %12d %12s %8.3f\n", k, kr.Captured, kr.Dropped, kr.Missed, truthCell(r, kr.Truth), lostPct(kr.Captured, kr.Lost))
	}
	fmt.Printf("%-18s %12d %12d %12d %12s %8.3f\n", "total", r.Captured, r.Dropped, r.Missed, truthCell(r, r.Truth), lostPct(r.Captured, r.Lost))
	if r.Uncounted > 0 {
		fmt.Printf("truth includes %d calls the counting kprobes skipped (they came while a kprobe handler ran) and the probe saw: repeated stamps\n", r.Uncounted)
	}
	if r.Hidden > 0 {
		fmt.Printf("missed and truth include %d hits the kernel skipped the tracepoint program for, from its own count: the truth counter skips them with the program\n", r.Hidden)
	}
	if r.Stats.HiddenUncounted {
		fmt.Printf("loss is a lower bound per kind: %s\n", capture.LowerBoundWhy)
	}
	if len(r.ForeignPrograms) > 0 {
		fmt.Printf("other tools' BPF programs were on the tracepoints (%s): truth includes %d hits they hid from the counter; loss is a lower bound: %s\n",
			foreignList(r.ForeignPrograms), r.ForeignHidden, capture.ForeignWhy)
	}
	if r.Stacks != nil {
		fmt.Println(r.Stacks)
	}
	if r.ProbeMisses > r.Missed {
		fmt.Printf("the kernel skipped the probe %d times for recursion, more than the %d missed: %s\n", r.ProbeMisses, r.Missed, capture.HiddenMissesWhy)
	}
	fmt.Println("dropped: the buffer was full (a bigger buffer or a faster reader helps); missed: the kernel did not run the probe (BPF recursion protection; no buffer helps)")
	if secs > 0 {
		fmt.Printf("captured %.0f events/s, %.2f MB/s; consumer CPU %.0f ns/event\n",
			float64(r.Captured)/secs, float64(r.CapturedBytes)/secs/1e6, perEvent(r.ConsumerCPUNs, r.Captured))
	}
	if r.Lag.N > 0 {
		fmt.Printf("delivery lag (record stamp to read): p50 %.0f us, p99 %.0f us, max %.0f us\n", r.Lag.P50Us, r.Lag.P99Us, r.Lag.MaxUs)
	}
	if r.TargetOpsPerSec > 0 {
		fmt.Printf("open loop: reached %.0f of %.0f ops/s (%.1f%%), %.2f%% of ops late", r.AchievedOpsPerSec, r.TargetOpsPerSec,
			100*r.AchievedOpsPerSec/r.TargetOpsPerSec, r.LatePercent)
		if r.AchievedOpsPerSec < 0.95*r.TargetOpsPerSec {
			fmt.Print(": below 95% of the target, so this is not a run at that rate")
		}
		fmt.Println()
	}
	if r.MaxBacklog > 0 {
		fmt.Printf("max sub-buffer backlog %d of %d\n", r.MaxBacklog, r.NumSubbufs)
	}
	if r.MaxBacklogBytes > 0 {
		fmt.Printf("max backlog %s written and not yet read (buffer %s)\n", bytesize.Format(int(r.MaxBacklogBytes)), bytesize.Format(r.BufferBytes))
	}
	fmt.Printf("reference: %s\n", r.Reference)
	if r.Verified {
		fmt.Println("check: captured + lost == reference on every CPU and kind; sequence gaps match the drop counters")
	} else {
		fmt.Printf("check FAILED: %s\n", r.VerifyError)
	}
}

func truthCell(r capture.Result, v uint64) string {
	if !r.TruthChecked {
		return "-"
	}
	return fmt.Sprint(v)
}

func lostPct(captured, lost uint64) float64 {
	if captured+lost == 0 {
		return 0
	}
	return 100 * float64(lost) / float64(captured+lost)
}

func perEvent(ns int64, events uint64) float64 {
	if events == 0 {
		return 0
	}
	return float64(ns) / float64(events)
}

// foreignList names other tools' programs: "kmem:kmalloc: id 57 trace_kmalloc, ...".
func foreignList(ps []capture.ForeignProgram) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("kmem:%s: id %d %s", p.Kind, p.ID, p.Name)))
	}
	return strings.Join(parts, ", ")
}
