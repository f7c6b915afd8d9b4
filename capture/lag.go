package capture

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
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

// lagRecorder measures the lag of every record the consumer reads. It
// reads the clock through Go's monotonic time (vDSO, CLOCK_MONOTONIC on
// Linux), anchored once to CLOCK_MONOTONIC, so a record costs one clock
// read and one histogram update, and no allocation.
type lagRecorder struct {
	anchor time.Time
	// monoAtAnchor is CLOCK_MONOTONIC (ns) at anchor.
	monoAtAnchor int64
	hist         *hdrhistogram.Histogram
}

// maxLagUs bounds what the histogram holds (an hour); longer lags are
// clamped to it.
const maxLagUs = 3600e6

func (l *lagRecorder) start() {
	var ts unix.Timespec
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	l.anchor = before.Add(after.Sub(before) / 2)
	l.monoAtAnchor = ts.Nano()
	l.hist = hdrhistogram.New(1, maxLagUs, 2)
}

// record adds the lag of a record stamped at tsNs (CLOCK_MONOTONIC).
func (l *lagRecorder) record(tsNs uint64) {
	now := l.monoAtAnchor + int64(time.Since(l.anchor))
	us := (now - int64(tsNs)) / 1000
	if us < 1 {
		us = 1 // below the histogram's resolution, and the anchor's error
	}
	_ = l.hist.RecordValue(min(us, maxLagUs))
}

func (l *lagRecorder) result() Lag {
	if l.hist == nil || l.hist.TotalCount() == 0 {
		return Lag{}
	}
	return Lag{P50Us: float64(l.hist.ValueAtQuantile(50)), P99Us: float64(l.hist.ValueAtQuantile(99)),
		MaxUs: float64(l.hist.Max()), N: l.hist.TotalCount()}
}
