package workloads

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
)

// settleTime is how long MeasureEventsPerOp keeps counting after the last
// op: some frees the ops cause run a little later (RCU callbacks, deferred
// fput), and they belong to the workload. Lazy RCU can hold a few back
// for seconds; those are missed.
const settleTime = 100 * time.Millisecond

// measureRounds is how many times MeasureEventsPerOp runs the workload.
// The counts are system-wide, so whatever else the machine does adds to
// them, in bursts; the median of a few rounds ignores a burst.
const measureRounds = 5

// MeasureEventsPerOp runs cfg and returns, per kind, the system-wide kmem
// tracepoint hits per op that the run causes, as counted by package truth.
//
// It runs the workload measureRounds times, each followed by an idle
// window as long as the run (work, idle, work, idle, ...). A work window
// goes from the start of the timed loop until settleTime after its end:
// set-up is not counted; tear-down (a few events per thread) is. The
// background hits expected in a work window are taken from the idle
// windows on either side of it (the mean of their rates), and the result
// per kind is the median over the rounds of (work hits - expected
// background) / ops, clamped at zero. Noise remains: a kind the workload
// does not cause comes out near, not exactly at, zero. Needs root (or
// perf_event_paranoid <= -1) and tracefs.
func MeasureEventsPerOp(ctx context.Context, cfg Config) (map[event.Kind]float64, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	counter, err := truth.Open(event.AllKinds)
	if err != nil {
		return nil, err
	}
	defer counter.Close()

	type round struct {
		ops        float64
		work, idle time.Duration
		worked     [event.NumKinds]float64 // hits in the work window
		idleRate   [event.NumKinds]float64 // hits per second in the idle window after it
	}
	rounds := make([]round, measureRounds)
	for i := range rounds {
		r := &rounds[i]
		var before [event.NumKinds]uint64
		var readErr error
		res, err := run(ctx, cfg, func() { before, readErr = totals(counter) })
		if err != nil {
			return nil, err
		}
		if readErr != nil {
			return nil, readErr
		}
		if res.Ops == 0 {
			return nil, fmt.Errorf("workload %s completed no ops: raise -ops or -duration", cfg.Name)
		}
		if err := sleep(ctx, settleTime); err != nil {
			return nil, err
		}
		after, err := totals(counter)
		if err != nil {
			return nil, err
		}
		r.ops = float64(res.Ops)
		r.work = res.Elapsed + settleTime
		idleStart := time.Now()
		if err := sleep(ctx, r.work); err != nil {
			return nil, err
		}
		idleEnd, err := totals(counter)
		if err != nil {
			return nil, err
		}
		r.idle = time.Since(idleStart)
		for _, k := range event.AllKinds {
			r.worked[k] = float64(after[k] - before[k])
			r.idleRate[k] = float64(idleEnd[k]-after[k]) / r.idle.Seconds()
		}
	}

	perOp := make(map[event.Kind]float64, len(event.AllKinds))
	samples := make([]float64, len(rounds))
	for _, k := range event.AllKinds {
		for i, r := range rounds {
			rate := r.idleRate[k]
			if i > 0 {
				rate = (rate + rounds[i-1].idleRate[k]) / 2
			}
			samples[i] = (r.worked[k] - rate*r.work.Seconds()) / r.ops
		}
		slices.Sort(samples)
		perOp[k] = max(samples[len(samples)/2], 0)
	}
	return perOp, nil
}

func totals(c *truth.Counter) ([event.NumKinds]uint64, error) {
	var t [event.NumKinds]uint64
	var errs []error
	for _, k := range event.AllKinds {
		v, err := c.Total(k)
		errs = append(errs, err)
		t[k] = v
	}
	return t, errors.Join(errs...)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
