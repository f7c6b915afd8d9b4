package workloads

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// deadlineCheckEvery is how many closed-loop ops run between two reads of
// the clock: a read costs about as much as a cheap op, and a deadline
// overrun of a few dozen microsecond-ops does not matter.
const deadlineCheckEvery = 64

// maxSleep bounds one sleep of an open-loop thread, so that a thread
// waiting for a far-off op still notices stop within maxSleep.
const maxSleep = 10 * time.Millisecond

// loop runs ops until the thread's quota is done, the deadline (if not
// zero) passes, stop is called, or an op fails (t.err).
func (t *thread) loop(w worker, stop *stopper, startAt, deadline time.Time) {
	if t.interval > 0 {
		t.openLoop(w, stop, startAt, deadline)
	} else {
		t.closedLoop(w, stop, deadline)
	}
}

func (t *thread) closedLoop(w worker, stop *stopper, deadline time.Time) {
	hasDeadline := !deadline.IsZero()
	for t.ops < t.quota && !stop.flag.Load() {
		if hasDeadline && t.ops%deadlineCheckEvery == 0 && !time.Now().Before(deadline) {
			return
		}
		if err := w.op(); err != nil {
			t.fail(err, stop)
			return
		}
		t.ops++
	}
}

// openLoop runs op i at startAt + (i + phase) * interval, whatever the
// earlier ops took, so that slow ops do not lower the offered rate over
// the run (no accumulated drift); an op that could not start within one
// interval of its schedule counts as late. phase staggers the threads
// evenly over one interval, so the total event stream is smooth rather
// than Threads ops at once.
//
// The thread sleeps in nanosleep(2) with a timer slack of 1ns (restored
// after the loop): a Go timer wakes up to a millisecond late, because the
// runtime's poller waits in whole milliseconds, which is more than the
// interval at a few thousand ops/s. Neither adds slab events.
func (t *thread) openLoop(w worker, stop *stopper, startAt, deadline time.Time) {
	if slack, err := unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0); err == nil {
		if unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0) == nil {
			defer unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0)
		}
	}
	hasDeadline := !deadline.IsZero()
	interval := time.Duration(t.interval)
	for t.ops < t.quota && !stop.flag.Load() {
		due := startAt.Add(time.Duration((float64(t.ops) + t.phase) * t.interval))
		if hasDeadline && !due.Before(deadline) {
			return
		}
		if !sleepUntil(due, stop) {
			return
		}
		if time.Since(due) > interval {
			t.late++
		}
		if err := w.op(); err != nil {
			t.fail(err, stop)
			return
		}
		t.ops++
	}
}

// sleepUntil returns when due has come (true) or stop was called (false).
func sleepUntil(due time.Time, stop *stopper) bool {
	for {
		wait := time.Until(due)
		if wait <= 0 {
			return true
		}
		if stop.flag.Load() {
			return false
		}
		// Interrupted sleeps (EINTR) just go round again.
		ts := unix.NsecToTimespec(int64(min(wait, maxSleep)))
		unix.Nanosleep(&ts, nil)
	}
}

// fail records the first op error and stops the other threads.
func (t *thread) fail(err error, stop *stopper) {
	t.err = fmt.Errorf("thread %d: op %d: %w", t.index, t.ops+1, err)
	stop.stop()
}
