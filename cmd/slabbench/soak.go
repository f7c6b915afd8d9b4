package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/vm"
	"github.com/slabbench/slabbench/workloads"
)

func init() {
	register("soak", "capture many short windows on every path and attach mode under background loads, and count the truth mismatches", runSoak)
}

// soakCell is one combination the soak captures windows of.
type soakCell struct {
	path     capture.Path
	attach   bpftrace.Attach
	workload string
	load     string
}

func (c soakCell) String() string {
	return fmt.Sprintf("path=%s attach=%s workload=%s load=%s", c.path, c.attach, c.workload, c.load)
}

// soakTally is what a cell's windows came to.
type soakTally struct {
	windows, mismatches, lowerBound int
	captured, lost, hidden          uint64
	firstMismatch                   string
}

func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	windows := fs.Int("windows", 42, "capture windows per path, attach mode, workload and load (1 to 100000)")
	window := fs.Duration("window", 200*time.Millisecond, "how long each window's workload runs (10ms to 1m)")
	paths := fs.String("paths", "ringbuf,perfbuf,relay", "transports, comma-separated (relay only where the module loads)")
	attaches := fs.String("attach", "tracepoint,rawtp", "eBPF attach modes, comma-separated (relay hooks tracepoints only)")
	wls := fs.String("workloads", "openclose,pipecreate,none", "workloads, comma-separated (none: what the system does)")
	loads := fs.String("loads", strings.Join(soakLoadNames, ","), "background loads, comma-separated: "+strings.Join(soakLoadNames, ", "))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q: soak takes flags only (slabbench soak -h)", fs.Arg(0))
	case *windows < 1 || *windows > 100000:
		return fmt.Errorf("--windows %d: want 1 to 100000", *windows)
	case *window < 10*time.Millisecond || *window > time.Minute:
		return fmt.Errorf("--window %v: want 10ms to 1m", *window)
	}
	cells, err := soakCells(*paths, *attaches, *wls, *loads)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tallies := make([]soakTally, len(cells))
	start := time.Now()
	for i, c := range cells {
		if err := soakCellRun(ctx, c, *windows, *window, &tallies[i]); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "soak: %d of %d cells, %v\n", i+1, len(cells), time.Since(start).Round(time.Second))
	}
	return printSoak(cells, tallies)
}

// soakCells is every combination of the lists that can run here.
func soakCells(paths, attaches, wls, loads string) ([]soakCell, error) {
	var cells []soakCell
	for _, p := range strings.Split(paths, ",") {
		path := capture.Path(p)
		if path != capture.PathRingbuf && path != capture.PathPerfbuf && path != capture.PathRelay {
			return nil, fmt.Errorf("--paths: %q is not ringbuf, perfbuf or relay", p)
		}
		if path == capture.PathRelay {
			if err := relaytrace.Available(""); err != nil {
				fmt.Fprintf(os.Stderr, "soak: relay skipped here: %v\n", err)
				continue
			}
		}
		for _, a := range strings.Split(attaches, ",") {
			attach := bpftrace.Attach(a)
			if !slices.Contains([]bpftrace.Attach{bpftrace.AttachTracepoint, bpftrace.AttachRawTP, bpftrace.AttachKprobe, bpftrace.AttachFentry}, attach) {
				return nil, fmt.Errorf("--attach: %q is not tracepoint, rawtp, kprobe or fentry", a)
			}
			if path == capture.PathRelay && attach != bpftrace.AttachTracepoint {
				continue
			}
			for _, w := range strings.Split(wls, ",") {
				if w != "none" && !slices.Contains(workloads.Names(), w) {
					return nil, fmt.Errorf("--workloads: %q is not one of %s or none", w, strings.Join(workloads.Names(), ", "))
				}
				for _, l := range strings.Split(loads, ",") {
					if soakLoads[l] == nil {
						return nil, fmt.Errorf("--loads: %q is not one of %s", l, strings.Join(soakLoadNames, ", "))
					}
					cells = append(cells, soakCell{path, attach, w, l})
				}
			}
		}
	}
	if len(cells) == 0 {
		return nil, errors.New("soak: nothing to run here (--paths, --attach)")
	}
	return cells, nil
}

// soakCellRun captures n windows of c with its load running beside them.
func soakCellRun(ctx context.Context, c soakCell, n int, window time.Duration, t *soakTally) error {
	stopLoad := runLoad(ctx, c.load)
	defer stopLoad()
	cfg := capture.Config{Path: c.path, Attach: c.attach, Kinds: event.AllKinds, Truth: true,
		SubbufSize: 64 << 10, NumSubbufs: 4,
		Workload: workloads.Config{Name: c.workload, Threads: 2, Duration: window}}
	if c.path == capture.PathRelay {
		cfg.Attach = ""
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("soak %s: %w", c, err)
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res, err := capture.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("soak %s, window %d: %w", c, i+1, err)
		}
		t.windows++
		t.captured += res.Captured
		t.lost += res.Lost
		t.hidden += res.Hidden
		if res.LossLowerBound {
			t.lowerBound++
		}
		if !res.Verified {
			t.mismatches++
			if t.firstMismatch == "" {
				t.firstMismatch = res.VerifyError
			}
		}
	}
	return stopLoad()
}

// printSoak writes the table and fails when any window mismatched.
func printSoak(cells []soakCell, tallies []soakTally) error {
	kernel := thisMachine().Kernel
	fmt.Printf("truth soak on %s, kernel %s\n\n", vm.Environment(), kernel)
	fmt.Printf("| path | attach | workload | load | windows | mismatches | captured | lost | hidden | loss a lower bound |\n|---|---|---|---|---|---|---|---|---|---|\n")
	var windows, mismatches int
	var firsts []string
	for i, c := range cells {
		t := tallies[i]
		windows += t.windows
		mismatches += t.mismatches
		attach := string(c.attach)
		if c.path == capture.PathRelay {
			attach = "module"
		}
		fmt.Printf("| %s | %s | %s | %s | %d | %d | %d | %d | %d | %d of %d |\n", c.path, attach, c.workload, c.load,
			t.windows, t.mismatches, t.captured, t.lost, t.hidden, t.lowerBound, t.windows)
		if t.firstMismatch != "" {
			firsts = append(firsts, fmt.Sprintf("%s: %s", c, t.firstMismatch))
		}
	}
	fmt.Printf("\n%d windows, %d mismatches\n", windows, mismatches)
	for _, f := range firsts {
		fmt.Println(f)
	}
	if mismatches > 0 {
		return fmt.Errorf("soak: %d of %d windows did not balance against the truth counter", mismatches, windows)
	}
	return nil
}
