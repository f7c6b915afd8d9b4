package workloads

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// stopper tells every thread to leave its loop; threads poll it between
// ops and between sleeps.
type stopper struct {
	flag atomic.Bool
}

func (s *stopper) stop() { s.flag.Store(true) }

// thread is the state of one worker thread; only that thread writes it
// until run has waited for it.
type thread struct {
	index    int
	cpu      int
	setup    func(quota int64) (worker, error)
	hold     time.Duration // how long to keep what the ops hold before tear-down
	quota    int64         // ops to do at most
	interval float64       // open loop: nanoseconds between this thread's ops; 0 for closed loop
	phase    float64       // open loop: offset of this thread's schedule, in intervals
	ops      int64
	late     int64
	end      time.Time // when the thread left the timed loop
	err      error
}

// extraProcs counts the Go Ps added for the workload threads of the runs
// under way (procsMu held).
var (
	procsMu    sync.Mutex
	extraProcs int
)

// reserveProcs raises GOMAXPROCS by n for as long as a run's n threads
// exist and returns what lowers it again. A locked thread asleep in
// nanosleep(2) keeps its P, so with GOMAXPROCS = CPUs an open loop's
// sleeping threads leave the consumer's goroutine without a P until the
// runtime's sysmon takes one back (up to 10 ms): the stall would be the
// harness's, not the transport's (results/README.md, "Go's Ps").
func reserveProcs(n int) (release func()) {
	procsMu.Lock()
	defer procsMu.Unlock()
	base := runtime.GOMAXPROCS(0) - extraProcs
	extraProcs += n
	runtime.GOMAXPROCS(base + extraProcs)
	return func() {
		procsMu.Lock()
		defer procsMu.Unlock()
		extraProcs -= n
		runtime.GOMAXPROCS(base + extraProcs)
	}
}

// UsableCPUs returns the CPUs this process may run on. The kernel limits an
// affinity mask to online CPUs, so this is the online CPUs unless a cpuset
// or taskset narrows them, where pinning to others would fail.
func UsableCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("workloads: sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, errors.New("workloads: sched_getaffinity returned no CPUs")
	}
	return cpus, nil
}

// runPinned runs set-up and then body on an OS thread pinned to t.cpu, and
// undoes the pinning afterwards. setupFailed is called instead of body when
// pinning or set-up fails, with t.err set.
func (t *thread) runPinned(body func(worker), setupFailed func()) {
	runtime.LockOSThread()
	var saved unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		runtime.UnlockOSThread()
		t.err = fmt.Errorf("thread %d: sched_getaffinity: %w", t.index, err)
		setupFailed()
		return
	}
	var pin unix.CPUSet
	pin.Set(t.cpu)
	if err := unix.SchedSetaffinity(0, &pin); err != nil {
		runtime.UnlockOSThread()
		t.err = fmt.Errorf("thread %d: pin to CPU %d (sched_setaffinity): %w", t.index, t.cpu, err)
		setupFailed()
		return
	}
	defer func() {
		// Give the thread back to the scheduler only if its old affinity
		// is restored: a goroutine that exits while locked makes the
		// runtime end the thread instead, so no other goroutine is left
		// pinned to one CPU.
		if unix.SchedSetaffinity(0, &saved) == nil {
			runtime.UnlockOSThread()
		}
	}()

	w, err := t.setup(t.quota)
	if err != nil {
		t.err = fmt.Errorf("thread %d: set-up: %w", t.index, err)
		setupFailed()
		return
	}
	body(w)
	if err := w.close(); err != nil && t.err == nil {
		t.err = fmt.Errorf("thread %d: tear-down: %w", t.index, err)
	}
}
