// Package workloads drives the kernel's slab allocator from user space with
// small, repeatable syscall loops, so that the capture paths of slabbench
// see a known stream of kmem tracepoint events (kmalloc, kfree,
// kmem_cache_alloc, kmem_cache_free).
//
// Each workload has a named op (open and close a file, send a message over
// a socketpair, ...) that runs on worker goroutines locked to OS threads and
// pinned to CPUs, either as fast as possible (closed loop) or at a fixed
// rate (open loop). Per-thread set-up such as creating a socketpair happens
// before the timed loop and is not counted as ops. The hot loop calls
// golang.org/x/sys/unix directly and allocates nothing, so the Go runtime
// adds no work of its own to what is measured.
//
// Not every syscall loop allocates: "pipe" (a small message through a
// pipe created once) causes no slab events at all, because the pipe keeps
// its buffer page; it serves as a control, and "pipecreate" is the pipe
// workload that allocates. MeasureEventsPerOp counts what a workload
// causes, per kind, with the kernel's own tracepoint counters.
package workloads

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config of one run. The error messages of Validate name the slabbench
// flags -workload, -threads, -ops, -duration and -rate, which set these
// fields.
type Config struct {
	Name     string        // workload name, one of Names()
	Threads  int           // worker goroutines, each locked to an OS thread pinned to CPU (i mod usable CPUs); 0 means 1
	Ops      int64         // total ops over all threads; 0 means run for Duration
	Duration time.Duration // used when Ops == 0, or as an upper bound when both are set
	Rate     float64       // open loop: target total ops/s over all threads; 0 = closed loop (as fast as possible)
	// Hold keeps what the ops of a holding workload (fdhold) allocated for
	// this long after a thread's last op, before tear-down releases it;
	// cancelling the run cuts it short. Elapsed does not include it.
	Hold time.Duration
	// CPUs the threads are pinned to in turn; nil: every CPU this process
	// may run on.
	CPUs []int
}

// Result of one run.
type Result struct {
	Ops     int64         // ops completed, over all threads
	Elapsed time.Duration // from the start of the timed loop until the last thread left it (tear-down excluded)
	// Late counts, in open loop only, the ops that started later than their
	// schedule by more than one interval: the rate the run really offered
	// is below Rate when Late is not small.
	Late int64
}

// maxRate bounds Config.Rate: above it the per-op interval is under a
// nanosecond and cannot be scheduled.
const maxRate = 1e9

// MaxThreads bounds Config.Threads; threads are pinned to CPUs in turn.
const MaxThreads = 1024

// worker is one thread's instance of a workload: what set-up created (a
// socketpair, a pipe) and the op that uses it.
type worker interface {
	// op does one unit of work; it must not allocate Go memory.
	op() error
	// close releases what set-up created.
	close() error
}

// workload is an entry of the registry.
type workload struct {
	name  string
	about string // one line: what one op does
	// setup runs on the pinned thread, before the timed loop; quota is
	// the most ops the thread will run (math.MaxInt64 for a duration).
	setup func(quota int64) (worker, error)
	// holds: the ops keep what they allocate until tear-down, so the
	// run needs --ops (bounded by maxHeld) and may take --hold.
	holds bool
}

// registry lists every workload, sorted by name (Names relies on it).
var registry = []workload{
	{"eventfd", "eventfd2() then close() of the new eventfd", newEventfd, false},
	{"fdhold", "openat(\"/dev/null\", O_RDONLY) and keep the fd open; the thread closes its fds at tear-down, after --hold (a known leak: one struct file per op, held)", newFDHold, true},
	{"mmap", "mmap() of one anonymous private page, write one byte to it (page fault), munmap()", newMmap, false},
	{"openclose", "openat(\"/dev/null\", O_RDONLY) then close()", newOpenClose, false},
	{"pipe", "write() a 64-byte message into a pipe, read() it back from the other end (pipe created once per thread); causes no slab events, the pipe reuses its buffer page", newPipe, false},
	{"pipecreate", "pipe2() then close() of both ends", newPipeCreate, false},
	{"socketpair", "write() a 64-byte message into an AF_UNIX stream socketpair, read() it from the peer (pair created once per thread)", newSocketpair, false},
}

func lookup(name string) (workload, bool) {
	for _, w := range registry {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

// Names returns the workload names, sorted.
func Names() []string {
	names := make([]string, len(registry))
	for i, w := range registry {
		names[i] = w.name
	}
	return names
}

// Holds says whether the named workload holds what its ops allocate until
// its tear-down (Config.Hold applies to it).
func Holds(name string) bool {
	w, ok := lookup(name)
	return ok && w.holds
}

// Describe returns one line saying what one op of the named workload does.
func Describe(name string) (string, error) {
	w, ok := lookup(name)
	if !ok {
		return "", unknownWorkload(name)
	}
	return w.about, nil
}

func unknownWorkload(name string) error {
	return fmt.Errorf("unknown workload %q: set --workload to one of %s, or none", name, strings.Join(Names(), ", "))
}

// Validate reports the first problem with c, naming the flag to change.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("no workload given: set --workload to one of %s", strings.Join(Names(), ", "))
	}
	wl, ok := lookup(c.Name)
	if !ok {
		return unknownWorkload(c.Name)
	}
	switch {
	case wl.holds && (c.Ops < 1 || c.Ops > maxHeld):
		return fmt.Errorf("--ops %d: %s keeps every op's fd open, so it needs a count of ops, 1..%d", c.Ops, c.Name, maxHeld)
	case !wl.holds && c.Hold != 0:
		return fmt.Errorf("--hold %v: only for a workload that holds what it allocates (fdhold)", c.Hold)
	case c.Hold < 0:
		return fmt.Errorf("--hold %v: want a duration >= 0", c.Hold)
	case c.Threads < 0 || c.Threads > MaxThreads:
		return fmt.Errorf("--threads %d: want 1..%d", c.Threads, MaxThreads)
	case c.Ops < 0:
		return fmt.Errorf("--ops %d: want a count > 0, or 0 to run for --duration", c.Ops)
	case c.Duration < 0:
		return fmt.Errorf("--duration %v: want a duration > 0, or 0 with --ops set", c.Duration)
	case c.Ops == 0 && c.Duration == 0:
		return errors.New("neither --ops nor --duration is set: set --ops to a count of ops or --duration to how long to run")
	case math.IsNaN(c.Rate) || c.Rate < 0 || c.Rate > maxRate:
		return fmt.Errorf("--rate %v: want ops/s in 1..%g for an open loop, or 0 for a closed loop (as fast as possible)", c.Rate, float64(maxRate))
	}
	return nil
}

func (c Config) threads() int {
	if c.Threads == 0 {
		return 1
	}
	return c.Threads
}

// Run runs the workload cfg describes and returns what was done. It returns
// early, with the ops done so far and ctx.Err(), when ctx is cancelled; and
// with the errors of the threads (joined) when a set-up or an op fails.
func Run(ctx context.Context, cfg Config) (Result, error) {
	return run(ctx, cfg, nil)
}

// threadCPUs returns the CPUs the threads are pinned to in turn: cfg.CPUs,
// each one this process may use, or all of those.
func (cfg Config) threadCPUs() ([]int, error) {
	cpus, err := UsableCPUs()
	if err != nil {
		return nil, err
	}
	if cfg.CPUs == nil {
		return cpus, nil
	}
	for _, c := range cfg.CPUs {
		if !slices.Contains(cpus, c) {
			return nil, fmt.Errorf("workload CPU %d: want one of the CPUs this process may use, %v", c, cpus)
		}
	}
	return cfg.CPUs, nil
}

// newThreads lays out the workload's threads: CPU, quota of ops and, in
// an open loop, each one's interval and phase in the schedule.
func (cfg Config) newThreads(wl workload, cpus []int) []thread {
	n := cfg.threads()
	threads := make([]thread, n)
	for i := range threads {
		t := &threads[i]
		t.index = i
		t.cpu = cpus[i%len(cpus)]
		t.setup = wl.setup
		t.hold = cfg.Hold
		t.quota = quota(cfg.Ops, n, i)
		if cfg.Rate > 0 {
			t.interval = float64(n) / cfg.Rate * float64(time.Second)
			t.phase = float64(i) / float64(n)
		}
	}
	return threads
}

// sumThreads adds the threads' ops and lateness up; the workload took as
// long as its slowest thread.
func sumThreads(threads []thread, startAt time.Time) (Result, error) {
	var res Result
	for i := range threads {
		res.Elapsed = max(res.Elapsed, threads[i].end.Sub(startAt))
		res.Ops += threads[i].ops
		res.Late += threads[i].late
	}
	return res, errors.Join(threadErrors(threads)...)
}

// threadErrors returns the threads' errors so far.
func threadErrors(threads []thread) []error {
	var errs []error
	for i := range threads {
		if threads[i].err != nil {
			errs = append(errs, threads[i].err)
		}
	}
	return errs
}

// run is Run with a hook called once every thread has finished set-up and
// waits to start, right before the timed loop begins: MeasureEventsPerOp
// reads its counters there, so that set-up is not counted.
func run(ctx context.Context, cfg Config, atStart func()) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	wl, _ := lookup(cfg.Name)
	cpus, err := cfg.threadCPUs()
	if err != nil {
		return Result{}, err
	}
	n := cfg.threads()
	release := reserveProcs(n)
	defer release()

	var stop stopper
	var cancelled atomic.Bool
	unwatch := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		stop.stop()
	})
	defer unwatch()

	var (
		setUp    sync.WaitGroup // every thread has run set-up (or failed)
		exited   sync.WaitGroup // every thread has torn down and unpinned
		start    = make(chan struct{})
		abort    atomic.Bool // set-up failed somewhere: skip the timed loop
		startAt  time.Time   // written before start is closed, read after
		deadline time.Time   // likewise; zero when there is none
		threads  = cfg.newThreads(wl, cpus)
	)
	setUp.Add(n)
	exited.Add(n)
	for i := range threads {
		t := &threads[i]
		go func() {
			defer exited.Done()
			t.runPinned(func(w worker) {
				setUp.Done()
				<-start
				if abort.Load() {
					return
				}
				t.loop(w, &stop, startAt, deadline)
				t.end = time.Now()
				if t.err == nil {
					sleepUntil(t.end.Add(t.hold), &stop)
				}
			}, setUp.Done)
		}()
	}
	setUp.Wait()
	errs := threadErrors(threads)
	if errs != nil {
		abort.Store(true)
	} else if atStart != nil {
		atStart()
	}
	startAt = time.Now()
	if cfg.Duration > 0 {
		deadline = startAt.Add(cfg.Duration)
	}
	close(start)
	exited.Wait()
	unwatched := unwatch()

	if errs != nil {
		return Result{}, errors.Join(errs...)
	}
	res, err := sumThreads(threads, startAt)
	if err != nil {
		return res, err
	}
	if !unwatched && cancelled.Load() {
		return res, ctx.Err()
	}
	return res, nil
}

// quota returns thread i's share of ops, spreading the remainder over the
// first threads; 0 ops (run for a duration) gives no limit.
func quota(ops int64, threads, i int) int64 {
	if ops == 0 {
		return math.MaxInt64
	}
	q := ops / int64(threads)
	if int64(i) < ops%int64(threads) {
		q++
	}
	return q
}
