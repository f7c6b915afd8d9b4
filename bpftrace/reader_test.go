package bpftrace

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
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

func TestReaderContract(t *testing.T) {
	for _, tr := range []Transport{Ringbuf, Perfbuf} {
		t.Run(string(tr), func(t *testing.T) {
			c := openTest(t, tr, []event.Kind{event.KindKmemCacheAlloc})

			// Deadline: pending records first, then ErrDeadlineExceeded.
			slabActivity(t)
			c.SetDeadline(time.Now().Add(50 * time.Millisecond))
			var rec event.Record
			n := 0
			var err error
			for err = c.ReadInto(&rec); err == nil; err = c.ReadInto(&rec) {
				if rec.Kind != event.KindKmemCacheAlloc || rec.Flags&event.FlagTruth == 0 {
					t.Fatalf("unexpected record %+v", rec)
				}
				n++
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("after %d records: want os.ErrDeadlineExceeded, got %v", n, err)
			}
			if n < 200 {
				t.Fatalf("read %d records for 200 opens", n)
			}

			// No allocation per record once warm.
			c.SetDeadline(time.Time{})
			slabActivity(t) // at least 200 records pending, 101 are read
			allocs := testing.AllocsPerRun(100, func() {
				if err := c.ReadInto(&rec); err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 0 {
				t.Fatalf("ReadInto allocates %.1f times per record", allocs)
			}

			// Close unblocks a blocked reader with os.ErrClosed, and is idempotent.
			if err := c.Stop(); err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now())
			for c.ReadInto(&rec) == nil {
			}
			c.SetDeadline(time.Time{})
			done := make(chan error, 1)
			go func() { done <- c.ReadInto(&rec) }()
			time.Sleep(50 * time.Millisecond)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, os.ErrClosed) {
					t.Fatalf("blocked ReadInto after Close: want os.ErrClosed, got %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock ReadInto")
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
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
