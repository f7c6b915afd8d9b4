package bpftrace

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/event/eventtest"
	"github.com/slabbench/slabbench/internal/testenv"
)

func openTest(t *testing.T, tr Transport, kinds []event.Kind) *Capture {
	t.Helper()
	testenv.RequireRoot(t)
	c, err := Open(Config{Transport: tr, Attach: AttachTracepoint, Kinds: kinds, Truth: true,
		RingbufSize: 1 << 20, PerCPUBufferSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// slabActivity makes a few hundred kmem events.
func slabActivity(t *testing.T) {
	for range 200 {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
}

// TestReaderContract holds both eBPF readers to the contract every path
// keeps (event/eventtest). Records come from the real raw tracepoint
// program run through BPF_PROG_TEST_RUN, so each check knows exactly how
// many are pending.
func TestReaderContract(t *testing.T) {
	for _, r := range []struct {
		name   string
		tr     Transport
		cilium bool
		poll   time.Duration
	}{{"ringbuf", Ringbuf, false, 0}, {"ringbuf-cilium", Ringbuf, true, 0}, {"perfbuf", Perfbuf, false, 0}, {"perfbuf-cilium", Perfbuf, true, 0},
		{"ringbuf-poll", Ringbuf, false, 2 * time.Millisecond}, {"perfbuf-poll", Perfbuf, false, 2 * time.Millisecond}} {
		t.Run(r.name, func(t *testing.T) {
			eventtest.Run(t, eventtest.Harness{
				Open: func(t *testing.T) event.Capture {
					testenv.RequireRoot(t)
					c, err := Open(Config{Transport: r.tr, Attach: AttachRawTP, Kinds: []event.Kind{event.KindKmalloc},
						RingbufSize: 1 << 20, PerCPUBufferSize: 256 << 10, Detached: true, CiliumReader: r.cilium, PollInterval: r.poll})
					if err != nil {
						t.Fatal(err)
					}
					return c
				},
				Produce: func(t *testing.T, c event.Capture, n int) {
					if err := c.(*Capture).Inject(n); err != nil {
						t.Fatal(err)
					}
				},
			})
		})
	}
}

// TestPerfLostRecordsBoundedByDrops: the perf buffer's own
// PERF_RECORD_LOST count never exceeds the programs' drop counters. (It
// can lag them: the kernel writes the lost record only once the next
// sample fits, and none comes after the programs detach.)
func TestPerfLostRecordsBoundedByDrops(t *testing.T) {
	testenv.RequireRoot(t)
	c, err := Open(Config{Transport: Perfbuf, Attach: AttachTracepoint, Kinds: event.AllKinds, Truth: true,
		PerCPUBufferSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 20 {
		slabActivity(t)
	}
	c.Stop()
	c.SetDeadline(time.Now())
	var rec event.Record
	for c.ReadInto(&rec) == nil {
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	tot := st.Total()
	if tot.Lost-tot.Missed == 0 {
		t.Fatal("a one-page perf buffer never filled")
	}
	t.Logf("drops %d, PERF_RECORD_LOST %d", tot.Lost-tot.Missed, c.PerfLostRecords())
	if c.PerfLostRecords() > tot.Lost-tot.Missed {
		t.Fatalf("perf reader reported %d lost records, programs counted %d drops", c.PerfLostRecords(), tot.Lost-tot.Missed)
	}
}

// probedActivity opens a capture of cfg, makes slab activity, stops it and
// returns it (closed at the test's end) with its programs' run count and
// time (cfg.ProbeTime).
func probedActivity(t *testing.T, cfg Config) (*Capture, uint64, time.Duration) {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	slabActivity(t)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	runs, total, err := c.ProbeTime()
	if err != nil {
		t.Fatal(err)
	}
	return c, runs, total
}

// TestProbeTime: with the kernel's run-time statistics on, the programs'
// run count is exactly the hits they handled, and they took some time.
func TestProbeTime(t *testing.T) {
	testenv.RequireRoot(t)
	for _, attach := range []Attach{AttachTracepoint, AttachRawTP} {
		t.Run(string(attach), func(t *testing.T) {
			c, runs, total := probedActivity(t, Config{Transport: Ringbuf, Attach: attach, Kinds: []event.Kind{event.KindKmemCacheAlloc},
				RingbufSize: 1 << 20, ProbeTime: true})
			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			attempts := st.Kind(event.KindKmemCacheAlloc).Attempts
			t.Logf("%d runs, %v in all, %.0f ns per run; %d attempts", runs, total, float64(total.Nanoseconds())/float64(runs), attempts)
			if runs != attempts || runs < 200 || total <= 0 {
				t.Fatalf("%d runs taking %v for %d attempts; want runs == attempts >= 200 and time > 0", runs, total, attempts)
			}
		})
	}
}

// TestProbeParts runs the program's parts (BenchmarkProbeParts) on both
// transports: every run of the floor and fill parts writes one record,
// zeroed or filled, and counts nothing; the accounted part stamps
// sequence numbers and balances.
func TestProbeParts(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tr := range []Transport{Ringbuf, Perfbuf} {
		for _, part := range []ProbePart{PartFloor, PartFill, PartAccounted} {
			t.Run(fmt.Sprintf("%s/part=%d", tr, part), func(t *testing.T) {
				c, runs, _ := probedActivity(t, Config{Transport: tr, Attach: AttachRawTP, Kinds: []event.Kind{event.KindKmemCacheAlloc},
					RingbufSize: 1 << 20, PerCPUBufferSize: 1 << 20, WakeupBytes: 1<<20 - 1, Part: part, ProbeTime: true})
				c.SetDeadline(time.Now().Add(-time.Second)) // what is there, then ErrDeadlineExceeded
				var rec event.Record
				var records, filled uint64
				for {
					err := c.ReadInto(&rec)
					if errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					records++
					if rec.Kind == event.KindKmemCacheAlloc && rec.TsNs != 0 && rec.Ptr != 0 {
						filled++
					} else if rec != (event.Record{}) {
						t.Fatalf("record neither zeroed nor filled: %+v", rec)
					}
				}
				st, err := c.Stats()
				if err != nil {
					t.Fatal(err)
				}
				attempts := st.Kind(event.KindKmemCacheAlloc).Attempts
				t.Logf("%d runs, %d records (%d filled), %d attempts", runs, records, filled, attempts)
				want := map[ProbePart][3]uint64{PartFloor: {runs, 0, 0}, PartFill: {runs, runs, 0}, PartAccounted: {runs, runs, runs}}[part]
				if runs < 200 || records != want[0] || filled != want[1] || attempts != want[2] {
					t.Fatalf("%d records, %d filled, %d attempts of %d runs; want %v (and >= 200 runs)", records, filled, attempts, runs, want)
				}
				if part == PartAccounted {
					if err := st.Verify(); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
}

// TestPollingReader: a reader that looks on a timer is never woken by the
// transport and still reads every record, each within about one interval
// of its writing: its lag is the interval's, where a woken reader's is a
// wakeup's.
func TestPollingReader(t *testing.T) {
	const interval = 20 * time.Millisecond
	for _, tr := range []Transport{Ringbuf, Perfbuf} {
		t.Run(string(tr), func(t *testing.T) {
			testenv.RequireRoot(t)
			c, err := Open(Config{Transport: tr, Attach: AttachTracepoint, Kinds: event.AllKinds, Truth: true,
				RingbufSize: 4 << 20, PerCPUBufferSize: 2 << 20, PollInterval: interval})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			type read struct {
				n      int
				lagsNs []int64
				err    error
			}
			done := make(chan read, 1)
			go func() {
				var r read
				var rec event.Record
				for {
					err := c.ReadInto(&rec)
					if errors.Is(err, event.ErrFlushed) {
						done <- r
						return
					}
					if err != nil {
						r.err = err
						done <- r
						return
					}
					r.n++
					r.lagsNs = append(r.lagsNs, monoNow()-int64(rec.TsNs))
				}
			}()
			for range 5 {
				slabActivity(t)
				time.Sleep(30 * time.Millisecond)
			}
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * interval) // the reader looks again and takes the rest
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			st, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Verify(); err != nil {
				t.Fatal(err)
			}
			if w := c.Wakeups(); w != 0 {
				t.Errorf("the transport woke a polling reader %d times", w)
			}
			slices.Sort(r.lagsNs)
			p50, p99 := time.Duration(r.lagsNs[len(r.lagsNs)/2]), time.Duration(r.lagsNs[len(r.lagsNs)*99/100])
			t.Logf("%d records, lag p50 %v, p99 %v, polling every %v", r.n, p50, p99, interval)
			if p50 < interval/10 {
				t.Errorf("lag p50 %v: a reader polling every %v was woken, not polling", p50, interval)
			}
			if p99 > interval+200*time.Millisecond {
				t.Errorf("lag p99 %v: a reader polling every %v looked late", p99, interval)
			}
		})
	}
}

// monoNow is CLOCK_MONOTONIC in ns, the clock the records are stamped with.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
