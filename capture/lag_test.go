package capture

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// waitingReader is a reader whose waits the test counts itself; its
// reading methods are never called.
type waitingReader struct {
	event.Reader
	waits uint64
}

func (r *waitingReader) Waits() (uint64, bool) { return r.waits, true }

func monoNs(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// TestLagClockAfterWait checks when the recorder reads the clock again:
// after a wait of the reader, and after LagClockEvery records, but not
// in between, where a record's read time is the last clock read's.
func TestLagClockAfterWait(t *testing.T) {
	const pause = 20 * time.Millisecond
	r := &waitingReader{}
	l := NewLagRecorder(r)
	stamped := monoNs(t)
	l.Record(stamped)
	time.Sleep(pause)
	l.Record(stamped) // no wait counted: the clock read above serves it
	if got := l.Result().MaxUs; got >= float64(pause.Microseconds()) {
		t.Errorf("lag %v us without a wait: want the clock of the record before (under %v)", got, pause)
	}
	r.waits++
	l.Record(stamped) // read after a wait: a new clock read
	if got := l.Result().MaxUs; got < float64(pause.Microseconds()) {
		t.Errorf("lag %v us after a wait of %v: the clock was not read again", got, pause)
	}

	l = NewLagRecorder(r)
	stamped = monoNs(t)
	for range LagClockEvery {
		l.Record(stamped)
	}
	time.Sleep(pause)
	l.Record(stamped) // past LagClockEvery records: a new clock read
	if got := l.Result().MaxUs; got < float64(pause.Microseconds()) {
		t.Errorf("lag %v us for record %d: the clock was not read again after %d records", got, LagClockEvery+1, LagClockEvery)
	}
	if n := l.Result().N; n != LagClockEvery+1 {
		t.Errorf("%d lags recorded, want every record's (%d)", n, LagClockEvery+1)
	}
}

// TestLagClockEveryRecordWithoutWaits: a reader that does not count its
// waits (cilium/ebpf's) gets a clock read per record.
func TestLagClockEveryRecordWithoutWaits(t *testing.T) {
	l := NewLagRecorder(struct{ event.Reader }{})
	stamped := monoNs(t)
	l.Record(stamped)
	time.Sleep(20 * time.Millisecond)
	l.Record(stamped)
	if got := l.Result().MaxUs; got < 20000 {
		t.Errorf("lag %v us 20 ms after the stamp: want the clock read for every record", got)
	}
}
