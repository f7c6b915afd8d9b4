// Package eventtest checks that an event.Capture keeps the event.Reader
// contract, so that every path (relay, ring buffer, perf buffer) is held
// to the same one: pending records before a deadline, a deadline set from
// another goroutine, zero allocations per record, Flush then
// event.ErrFlushed, Close unblocking a blocked read, and Stats after Close.
package eventtest

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/slabbench/slabbench/event"
)

// Harness tells Run how to make a capture and records in it.
type Harness struct {
	// Open returns a running capture; Run closes it.
	Open func(t *testing.T) event.Capture
	// Produce makes at least n more records readable without a Flush.
	Produce func(t *testing.T, c event.Capture, n int)
}

// unblockTimeout is how long a blocked ReadInto may take to notice a
// deadline or Close (the eBPF readers look every 100 ms).
const unblockTimeout = 2 * time.Second

// Run runs every contract check against captures from h, each on a fresh
// capture.
func Run(t *testing.T, h Harness) {
	checks := []struct {
		name string
		fn   func(t *testing.T, h Harness, c event.Capture)
	}{
		{"PendingThenDeadline", pendingThenDeadline},
		{"DeadlineFromAnotherGoroutine", deadlineFromAnotherGoroutine},
		{"NoAllocations", noAllocations},
		{"FlushThenErrFlushed", flushThenErrFlushed},
		{"CloseUnblocks", closeUnblocks},
		{"StatsAfterClose", statsAfterClose},
	}
	for _, ck := range checks {
		t.Run(ck.name, func(t *testing.T) {
			c := h.Open(t)
			t.Cleanup(func() { c.Close() })
			ck.fn(t, h, c)
		})
	}
}

// readUntilError reads records until ReadInto fails and returns how many
// it read and the error.
func readUntilError(c event.Capture) (int, error) {
	var rec event.Record
	n := 0
	for {
		if err := c.ReadInto(&rec); err != nil {
			return n, err
		}
		n++
	}
}

// stopAndDrain closes the window and reads what is pending; it returns
// the records read.
func stopAndDrain(t *testing.T, c event.Capture) int {
	t.Helper()
	if err := c.Stop(); err != nil {
		t.Fatal("Stop: ", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal("second Stop: ", err)
	}
	c.SetDeadline(time.Now())
	n, err := readUntilError(c)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("draining after Stop with a past deadline: %d records, then %v; want os.ErrDeadlineExceeded", n, err)
	}
	return n
}

// blockedRead starts a ReadInto that should block and checks that it does.
func blockedRead(t *testing.T, c event.Capture) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var rec event.Record
		done <- c.ReadInto(&rec)
	}()
	select {
	case err := <-done:
		t.Fatalf("ReadInto on a stopped, drained capture without deadline returned %v; want it to block", err)
	case <-time.After(200 * time.Millisecond):
	}
	return done
}

func pendingThenDeadline(t *testing.T, h Harness, c event.Capture) {
	const n = 200
	h.Produce(t, c, n)
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	read, err := readUntilError(c)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d records: got %v, want os.ErrDeadlineExceeded", read, err)
	}
	if read < n {
		t.Fatalf("read %d records before the deadline, %d were pending", read, n)
	}
}

func deadlineFromAnotherGoroutine(t *testing.T, h Harness, c event.Capture) {
	stopAndDrain(t, c)
	c.SetDeadline(time.Time{})
	done := blockedRead(t, c)
	set := time.Now()
	go c.SetDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked ReadInto after SetDeadline: %v, want os.ErrDeadlineExceeded", err)
		}
		t.Logf("a blocked ReadInto returned %v after SetDeadline", time.Since(set).Round(time.Millisecond))
	case <-time.After(unblockTimeout):
		t.Fatalf("SetDeadline from another goroutine did not unblock ReadInto within %v", unblockTimeout)
	}
}

func noAllocations(t *testing.T, h Harness, c event.Capture) {
	h.Produce(t, c, 300) // AllocsPerRun reads 101
	var rec event.Record
	if err := c.ReadInto(&rec); err != nil { // warm: first-use state
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.ReadInto(&rec); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("ReadInto allocates %.2f times per record", allocs)
	}
}

func flushThenErrFlushed(t *testing.T, h Harness, c event.Capture) {
	const n = 200
	h.Produce(t, c, n)
	if err := c.Flush(); err != nil {
		t.Fatal("Flush: ", err)
	}
	read, err := readUntilError(c)
	if !errors.Is(err, event.ErrFlushed) {
		t.Fatalf("after Flush and %d records: %v, want event.ErrFlushed", read, err)
	}
	if read < n {
		t.Fatalf("Flush returned %d records, %d were pending", read, n)
	}
	// ErrFlushed is returned once per Flush: the reader then waits again.
	rest := stopAndDrain(t, c)
	t.Logf("%d records before ErrFlushed, %d after", read, rest)
}

func closeUnblocks(t *testing.T, h Harness, c event.Capture) {
	stopAndDrain(t, c)
	c.SetDeadline(time.Time{})
	done := blockedRead(t, c)
	if err := c.Close(); err != nil {
		t.Fatal("Close: ", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("blocked ReadInto after Close: %v, want an error wrapping os.ErrClosed", err)
		}
	case <-time.After(unblockTimeout):
		t.Fatalf("Close did not unblock ReadInto within %v", unblockTimeout)
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close: ", err)
	}
	var rec event.Record
	if err := c.ReadInto(&rec); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadInto after Close: %v, want an error wrapping os.ErrClosed", err)
	}
	if err := c.Flush(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Flush after Close: %v, want an error wrapping os.ErrClosed", err)
	}
}

func statsAfterClose(t *testing.T, h Harness, c event.Capture) {
	h.Produce(t, c, 200)
	read := stopAndDrain(t, c)
	before, err := c.Stats()
	if err != nil {
		t.Fatal("Stats: ", err)
	}
	if err := before.Verify(); err != nil {
		t.Fatal(err)
	}
	if got := before.Total().Captured; got != uint64(read) {
		t.Fatalf("Stats says %d captured, the reader returned %d", got, read)
	}
	if err := c.Close(); err != nil {
		t.Fatal("Close: ", err)
	}
	after, err := c.Stats()
	if err != nil {
		t.Fatal("Stats after Close: ", err)
	}
	if b, a := before.Total(), after.Total(); a != b {
		t.Fatalf("Stats after Close %+v, before %+v", a, b)
	}
}
