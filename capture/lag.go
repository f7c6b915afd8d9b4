package capture

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// Lag summarizes the delivery lag of the captured records in
// microseconds: from the record's ts_ns (CLOCK_MONOTONIC, stamped by the
// probe) to the consumer's read.
type Lag struct {
	P50Us float64 `json:"p50_us"`
	P99Us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
	N     int64   `json:"n"`
}

// A LagRecorder measures the lag of every record a consumer reads. It
// reads the clock through Go's monotonic time (vDSO, CLOCK_MONOTONIC on
// Linux), anchored once to CLOCK_MONOTONIC, and no allocation. A clock
// read costs more than the reader's whole work per record (about 25 ns
// against 24 natively: results/README.md), so where the reader counts its
// waits the clock is read once per LagClockEvery records and again after
// every wait: a record's read time is then taken at most LagClockEvery-1
// records before the record was read, never before a wait for it.
type LagRecorder struct {
	anchor time.Time
	// monoAtAnchor is CLOCK_MONOTONIC (ns) at anchor.
	monoAtAnchor int64
	hist         *hdrhistogram.Histogram
	// waits reports the reader's waits so far, nil where it does not
	// count them; every is how many records a clock read serves:
	// LagClockEvery, or 1 where waits is nil.
	waits func() (uint64, bool)
	every int
	// now is the last clock read, good for untilClock more records
	// while the reader has waited waitsAtClock times.
	now          int64
	untilClock   int
	waitsAtClock uint64
}

// LagClockEvery is how many records one clock read serves at most.
const LagClockEvery = 16

// maxLagUs bounds what the histogram holds (an hour); longer lags are
// clamped to it.
const maxLagUs = 3600e6

// NewLagRecorder starts measuring the lag of the records read from r. Call
// it on the goroutine that reads r, and Record from it only.
func NewLagRecorder(r event.Reader) *LagRecorder {
	l := &LagRecorder{hist: hdrhistogram.New(1, maxLagUs, 2), every: 1}
	if w, ok := r.(interface{ Waits() (uint64, bool) }); ok {
		if _, counted := w.Waits(); counted {
			l.waits, l.every = w.Waits, LagClockEvery
		}
	}
	var ts unix.Timespec
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	l.anchor = before.Add(after.Sub(before) / 2)
	l.monoAtAnchor = ts.Nano()
	return l
}

// Record adds the lag of a record stamped at tsNs (CLOCK_MONOTONIC), read
// just now.
func (l *LagRecorder) Record(tsNs uint64) {
	var waits uint64
	if l.waits != nil {
		waits, _ = l.waits()
	}
	if l.untilClock == 0 || waits != l.waitsAtClock {
		l.now = l.monoAtAnchor + int64(time.Since(l.anchor))
		l.untilClock, l.waitsAtClock = l.every, waits
	}
	l.untilClock--
	us := (l.now - int64(tsNs)) / 1000
	if us < 1 {
		us = 1 // below the histogram's resolution, and the anchor's error
	}
	_ = l.hist.RecordValue(min(us, maxLagUs))
}

// Result summarizes the lags recorded so far.
func (l *LagRecorder) Result() Lag {
	if l == nil || l.hist.TotalCount() == 0 {
		return Lag{}
	}
	return Lag{P50Us: float64(l.hist.ValueAtQuantile(50)), P99Us: float64(l.hist.ValueAtQuantile(99)),
		MaxUs: float64(l.hist.Max()), N: l.hist.TotalCount()}
}
