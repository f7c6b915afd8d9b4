package workloads

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
)

func TestNamesAndDescribe(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, want sorted", names)
	}
	for _, want := range []string{"openclose", "socketpair", "pipe", "mmap", "eventfd"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, lacks %q", names, want)
		}
	}
	for _, n := range names {
		d, err := Describe(n)
		if err != nil || d == "" || strings.Contains(d, "\n") {
			t.Errorf("Describe(%q) = %q, %v; want one line", n, d, err)
		}
	}
	if _, err := Describe("nosuch"); err == nil || !strings.Contains(err.Error(), "openclose") {
		t.Errorf("Describe(nosuch) error = %v, want one listing the valid workloads", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "openclose", Ops: 1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("%+v: %v", ok, err)
	}
	for _, tc := range []struct {
		cfg  Config
		flag string // the flag the error must name
	}{
		{Config{Ops: 1}, "-workload"},
		{Config{Name: "nosuch", Ops: 1}, "-workload"},
		{Config{Name: "openclose", Ops: 1, Threads: -1}, "-threads"},
		{Config{Name: "openclose", Ops: -1}, "-ops"},
		{Config{Name: "openclose", Duration: -time.Second}, "-duration"},
		{Config{Name: "openclose"}, "-duration"},
		{Config{Name: "openclose", Ops: 1, Rate: -1}, "-rate"},
		{Config{Name: "openclose", Ops: 1, Rate: math.NaN()}, "-rate"},
		{Config{Name: "openclose", Ops: 1, Rate: math.Inf(1)}, "-rate"},
		{Config{Name: "openclose", Ops: 1, Hold: time.Second}, "-hold"},
		{Config{Name: "fdhold", Duration: time.Second}, "-ops"},
		{Config{Name: "fdhold", Ops: maxHeld + 1}, "-ops"},
		{Config{Name: "fdhold", Ops: 1, Hold: -time.Second}, "-hold"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.flag)
			continue
		}
		if _, runErr := Run(context.Background(), tc.cfg); runErr == nil || runErr.Error() != err.Error() {
			t.Errorf("Run(%+v) error = %v, want Validate's %v", tc.cfg, runErr, err)
		}
	}
	if err := (Config{Name: "nosuch", Ops: 1}).Validate(); !strings.Contains(err.Error(), strings.Join(Names(), ", ")) {
		t.Errorf("unknown workload error %q does not list the valid ones", err)
	}
}

func TestClosedLoop(t *testing.T) {
	const ops = 3001 // odd, so two threads split it unevenly
	for _, name := range Names() {
		for _, threads := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("workload=%s/threads=%d", name, threads), func(t *testing.T) {
				res, err := Run(context.Background(), Config{Name: name, Threads: threads, Ops: ops})
				if err != nil {
					t.Fatal(err)
				}
				if res.Ops != ops || res.Late != 0 || res.Elapsed <= 0 {
					t.Fatalf("Result = %+v, want %d ops, 0 late, positive elapsed", res, ops)
				}
				t.Logf("%.0f ns/op", float64(res.Elapsed)/float64(res.Ops))
			})
		}
	}
}

func TestDurationBoundsOps(t *testing.T) {
	start := time.Now()
	res, err := Run(context.Background(), Config{Name: "openclose", Threads: 2, Ops: math.MaxInt64, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second || res.Ops == 0 || res.Ops == math.MaxInt64 {
		t.Fatalf("Result = %+v after %v, want some ops, stopped by -duration 100ms", res, took)
	}
}

func TestOpenLoopRate(t *testing.T) {
	const rate, dur = 2000.0, 500 * time.Millisecond
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			res, err := Run(context.Background(), Config{Name: "openclose", Threads: threads, Duration: dur, Rate: rate})
			if err != nil {
				t.Fatal(err)
			}
			want := rate * dur.Seconds()
			t.Logf("%+v (want about %.0f ops)", res, want)
			// The schedule never lets more than want (+1 per thread) ops
			// start; a noisy machine may lose some.
			if float64(res.Ops) > want+float64(threads) || float64(res.Ops) < 0.6*want {
				t.Errorf("Ops = %d, want about %.0f", res.Ops, want)
			}
			if res.Late > res.Ops/5 {
				t.Errorf("Late = %d of %d ops", res.Late, res.Ops)
			}
		})
	}
	// With Ops set, the run cannot finish before the schedule of its last op.
	res, err := Run(context.Background(), Config{Name: "openclose", Threads: 2, Ops: 500, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	if minimum := time.Duration((250 - 1) * float64(time.Second) / (rate / 2)); res.Ops != 500 || res.Elapsed < minimum {
		t.Errorf("Result = %+v, want 500 ops taking at least %v", res, minimum)
	}
}

// TestHold checks that fdhold keeps its fds open for --hold after its
// last op, outside Elapsed, and closes every one of them at tear-down.
func TestHold(t *testing.T) {
	const ops, hold = 300, 300 * time.Millisecond
	before := openFDs(t)
	during := make(chan int, 1)
	go func() {
		time.Sleep(hold / 2)
		during <- openFDs(t)
	}()
	start := time.Now()
	res, err := Run(context.Background(), Config{Name: "fdhold", Threads: 2, Ops: ops, Hold: hold})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != ops || res.Elapsed >= hold || took < hold {
		t.Errorf("Result %+v after %v: want %d ops, Elapsed without the %v hold, the run with it", res, took, ops, hold)
	}
	if held := <-during - before; held != ops {
		t.Errorf("%d more fds open during the hold, want %d", held, ops)
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d fds open after the run, %d before: tear-down left some open", after, before)
	}
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestCancel(t *testing.T) {
	for _, rate := range []float64{0, 0.5} { // closed loop, and an open loop asleep between ops
		t.Run(fmt.Sprintf("rate=%g", rate), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := Run(ctx, Config{Name: "eventfd", Threads: 2, Duration: time.Hour, Rate: rate})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run error = %v, want context.DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 2*time.Second || res.Ops == 0 {
				t.Fatalf("Result = %+v after %v, want some ops and a prompt return", res, took)
			}
		})
	}
}

// TestNoAllocs checks that an op allocates no Go memory, so the runtime
// (GC, heap growth) adds nothing to the events and time measured.
func TestNoAllocs(t *testing.T) {
	for _, wl := range registry {
		t.Run(wl.name, func(t *testing.T) {
			w, err := wl.setup(2000)
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()
			var opErr error
			allocs := testing.AllocsPerRun(1000, func() {
				if err := w.op(); err != nil {
					opErr = err
				}
			})
			if opErr != nil {
				t.Fatal(opErr)
			}
			if allocs != 0 {
				t.Errorf("%v allocations per op, want 0", allocs)
			}
		})
	}
}

// minObjectsPerOp is how many slab objects one op of each workload must
// allocate and free on any kernel: what its syscalls cannot do without,
// not what a kernel was measured to do (which functions allocate which
// object, from kmalloc or a cache of its own, differs between kernels).
// pipe is missing on purpose: it causes no slab events (see
// maxEventsPerOp).
var minObjectsPerOp = map[string]float64{
	"openclose": 2, // the struct file and the path name buffer
	"eventfd":   2, // the eventfd context and its struct file
	"mmap":      1, // the VMA
	"fdhold":    2, // the held struct file (freed at tear-down, in the window) and the path name buffer
	// The skb and its data buffer (kmalloc'd or from a small-head cache).
	"socketpair": 2,
	// Two struct files, the pipe's inode, its pipe_inode_info and its
	// buffer array.
	"pipecreate": 5,
}

// objectsMargin allows for the idle background MeasureEventsPerOp
// subtracts, which can run high or low by a few events in 20,000 ops.
const objectsMargin = 0.9

// maxEventsPerOp bounds the total of the workloads that cause no slab
// events: a pipe keeps its buffer page between a write and the read that
// empties it, so a small message allocates nothing. They are controls:
// syscalls with no events to capture.
var maxEventsPerOp = map[string]float64{"pipe": 0.5}

// TestEventsPerOp counts, with the kernel's own tracepoint counters, the
// slab events each workload causes per op, and logs them in one line per
// workload:
//
//	events/op workload=NAME kmalloc=X kfree=X kmem_cache_alloc=X kmem_cache_free=X total=X
func TestEventsPerOp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("counting kmem tracepoints needs root (perf_event_open on tracepoints)")
	}
	if c, err := truth.Open(event.AllKinds); err != nil {
		t.Skipf("no perf tracepoint counting here: %v", err)
	} else {
		c.Close()
	}
	const ops = 20000
	for _, name := range Names() {
		if _, ok := minObjectsPerOp[name]; !ok && maxEventsPerOp[name] == 0 {
			t.Errorf("%s: no expectation in minObjectsPerOp or maxEventsPerOp", name)
		}
		n := int64(ops)
		if Holds(name) {
			n = 4000 // each op holds an fd: stay under the open-file limit
		}
		perOp, err := MeasureEventsPerOp(context.Background(), Config{Name: name, Threads: 1, Ops: n})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var line strings.Builder
		fmt.Fprintf(&line, "events/op workload=%s", name)
		var total float64
		for _, k := range event.AllKinds {
			fmt.Fprintf(&line, " %s=%.2f", k, perOp[k])
			total += perOp[k]
		}
		fmt.Fprintf(&line, " total=%.2f", total)
		t.Log(line.String())
		if limit, ok := maxEventsPerOp[name]; ok {
			if total > limit {
				t.Errorf("%s: %.2f slab events per op, want about 0 (at most %.2f)", name, total, limit)
			}
		}
		if want, ok := minObjectsPerOp[name]; ok {
			allocs := perOp[event.KindKmalloc] + perOp[event.KindKmemCacheAlloc]
			frees := perOp[event.KindKfree] + perOp[event.KindKmemCacheFree]
			if allocs < want*objectsMargin || frees < want*objectsMargin {
				t.Errorf("%s: %.2f allocations and %.2f frees per op, want at least %.0f of each", name, allocs, frees, want)
			}
		}
	}
}

// TestProcsReserved checks that a run adds a Go P per workload thread
// while its threads exist (a thread asleep in nanosleep keeps its P, and
// the consumer must not wait for one) and gives them back afterwards,
// also when runs overlap.
func TestProcsReserved(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	var during []int
	outer := Config{Name: "openclose", Threads: 2, Ops: 20, Rate: 1000}
	_, err := run(context.Background(), outer, func() {
		during = append(during, runtime.GOMAXPROCS(0))
		inner := Config{Name: "openclose", Threads: 3, Ops: 3}
		if _, err := run(context.Background(), inner, func() { during = append(during, runtime.GOMAXPROCS(0)) }); err != nil {
			t.Error(err)
		}
		during = append(during, runtime.GOMAXPROCS(0))
	})
	if err != nil {
		t.Fatal(err)
	}
	after := runtime.GOMAXPROCS(0)
	if want := []int{before + 2, before + 5, before + 2}; !slices.Equal(during, want) || after != before {
		t.Errorf("GOMAXPROCS %d before, %v during the runs, %d after: want %v during, %d after", before, during, after, want, before)
	}
}
