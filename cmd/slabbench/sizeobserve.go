package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/workloads"
)

// observeInterval is how long one backlog sample of size --observe covers.
const observeInterval = 100 * time.Millisecond

// observation is what size --observe watches: the machine for length, or
// command (when set) until it exits, at most length.
type observation struct {
	length  time.Duration
	command []string
}

// describe names the observation in the answer's source.
func (o observation) describe() string {
	if len(o.command) > 0 {
		return fmt.Sprintf("observed: -- %s, up to %v per path", strings.Join(o.command, " "), o.length)
	}
	return "observed: " + o.length.String() + " per path"
}

// sizeObserved answers size --observe: it captures what this machine does
// (or what command makes it do) on each path in turn, with buffers nothing
// fills, and sizes each for that traffic over a capture of seconds.
func sizeObserved(paths []string, wakeup, consumer string, obs observation, seconds float64, asJSON bool) error {
	if consumer != "shared" {
		return fmt.Errorf("--consumer %s: --observe watches the machine as it runs, the consumer sharing its CPUs; drop --consumer", consumer)
	}
	var bpf []string
	for _, p := range paths {
		if p != "relay" {
			bpf = append(bpf, p)
		}
	}
	if len(bpf) == 0 {
		return fmt.Errorf("--path relay: --observe measures ringbuf and perfbuf (relay's module keeps the largest backlog only)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(time.Duration(len(bpf))*obs.length, "observing")
	m := thisMachine()
	c := sizing.Calibration{File: obs.describe(), Config: map[string]string{
		"cpu": m.CPU, "cpus": strconv.Itoa(m.CPUs), "kernel": m.Kernel, "environment": m.Environment, "commit": buildCommit}}
	a := sizeAnswer{Source: "observed", Seconds: seconds, Risk: sizing.Risk, Machine: m, ThisMachine: m, SameMachine: true}
	a.Machine.File, a.Machine.Commit = c.File, buildCommit
	for _, p := range paths {
		if p == "relay" {
			a.Paths = append(a.Paths, sizePath{Path: p, Consumer: consumer, Environment: m.Environment, Verdict: string(sizing.VerdictNoModel),
				Why: "not observed: --observe measures ringbuf and perfbuf (relay's module keeps the largest backlog only)"})
			continue
		}
		sp, err := observePath(ctx, c, capture.Path(p), wakeup, obs, seconds, func() { bar.Add64(observeInterval.Milliseconds()) })
		if err != nil {
			bar.Exit()
			return err
		}
		a.Rate = max(a.Rate, sp.Calibration.Rate)
		a.Paths = append(a.Paths, sp)
	}
	bar.Finish()
	return printAnswer(a, consumer, asJSON)
}

// observePath captures what the machine does (or the observation's
// command makes it do) on one path and sizes it from the backlog it saw.
func observePath(ctx context.Context, c sizing.Calibration, path capture.Path, wakeup string, obs observation, seconds float64, tick func()) (sizePath, error) {
	wakeupBytes := 0
	if wakeup == "batched" {
		wakeupBytes = samplingWakeupBytes
	}
	cfg := samplingConfig(path, wakeupBytes, workloads.Config{Name: "none", Duration: obs.length})
	cfg.Command = obs.command
	s, res, err := sampleBacklog(ctx, cfg, wakeup, observeInterval, tick)
	if err != nil {
		return sizePath{}, fmt.Errorf("--observe: %w", err)
	}
	if !res.Verified {
		return sizePath{}, fmt.Errorf("--observe: %s: the accounting did not balance: %s", path, res.VerifyError)
	}
	if res.CommandExit > 0 {
		fmt.Fprintf(os.Stderr, "size: -- %s exited with status %d on %s; sized for the traffic it made\n", strings.Join(obs.command, " "), res.CommandExit, path)
	}
	c.Series = []sizing.BacklogSeries{s}
	sp := sizeCalibrated(c, string(path), wakeup, "shared", s.Rate, seconds)
	if res.Dropped > 0 {
		sp = sizePath{Path: string(path), Wakeup: wakeup, Consumer: "shared", Environment: c.Config["environment"],
			Verdict: string(sizing.VerdictCannotKeepUp), Calibration: sp.Calibration,
			Why: fmt.Sprintf("the reader dropped %d of this traffic's events with 8MiB per CPU: no buffer size keeps up with it", res.Dropped)}
	}
	return sp, nil
}
