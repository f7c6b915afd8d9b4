package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/sizing"
	"github.com/slabbench/slabbench/workloads"
)

// samplingWakeupBytes is --wakeup-bytes of the batched readers calibrate
// and size --observe sample (calibrate's default).
const samplingWakeupBytes = 16 << 10

// samplingConfig is the capture calibrate and size --observe sample the
// backlog of: tracepoint programs, every kind, the truth on, and
// calibrationBuffer per CPU in 4 sub-buffers, which nothing fills.
func samplingConfig(path capture.Path, wakeupBytes int, wl workloads.Config) capture.Config {
	return capture.Config{Path: path, Attach: bpftrace.AttachTracepoint, Kinds: event.AllKinds, Truth: true,
		SubbufSize: calibrationBuffer / 4, NumSubbufs: 4, WakeupBytes: wakeupBytes, Workload: wl}
}

// newProgress is the progress bar of a measurement of total, on stderr,
// with the time left.
func newProgress(total time.Duration, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total.Milliseconds(), progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what), progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish())
}

// sampleBacklog runs one capture of cfg and samples its reader's backlog
// every interval while the workload runs (for cfg.Workload.Duration when
// the workload is none): calibrate's and size --observe's measurement.
// The series' rates are the capture's, from the truth counter. tick, if
// set, is called after each sample.
func sampleBacklog(ctx context.Context, cfg capture.Config, wakeup string, interval time.Duration, tick func()) (sizing.BacklogSeries, capture.Result, error) {
	out := sizing.BacklogSeries{Path: string(cfg.Path), Wakeup: wakeup, WakeupBytes: cfg.WakeupBytes, Interval: interval.Seconds()}
	s, err := capture.Start(cfg)
	if err != nil {
		return out, capture.Result{}, err
	}
	defer s.Close()
	if _, ok := s.TakeBacklogBytes(); !ok {
		return out, capture.Result{}, fmt.Errorf("path %s: its reader does not show its backlog while it reads", cfg.Path)
	}
	share := 1.0
	if cfg.Path == capture.PathRingbuf {
		share = float64(runtime.NumCPU()) // one buffer for every CPU: each CPU's share
	}
	done := make(chan struct{})
	sampled := make(chan []float64)
	go func() {
		var samples []float64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b, _ := s.TakeBacklogBytes()
				samples = append(samples, float64(b)/share)
				if tick != nil {
					tick()
				}
			case <-done:
				sampled <- samples
				return
			}
		}
	}()
	wr, werr := s.Drive(ctx)
	close(done)
	out.Backlog = <-sampled
	res, err := s.Finish(wr)
	// The last, partial interval, once the reader has drained it: a
	// program that ran less than one interval, or ended before the
	// reader first looked, still gets its sample, with what it left
	// unread.
	b, _ := s.TakeBacklogBytes()
	out.Backlog = append(out.Backlog, float64(b)/share)
	if werr != nil {
		return out, res, fmt.Errorf("workload: %w", werr)
	}
	if err != nil {
		return out, res, err
	}
	secs := float64(res.DurationNs) / 1e9
	var busiest uint64
	for _, c := range res.Stats.PerCPU {
		var n uint64
		for _, k := range c.Kinds {
			n += k.Truth
		}
		busiest = max(busiest, n)
	}
	out.Rate = float64(res.Truth) / secs / float64(res.CPUs)
	out.BusiestRate = float64(busiest) / secs
	return out, res, nil
}
