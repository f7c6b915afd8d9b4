package perfrecord

import (
	"errors"
	"fmt"
	"time"

	"github.com/slabbench/slabbench/event"
)

// Result of one run.
type Result struct {
	Captured map[event.Kind]uint64 // samples perf wrote, per kind
	// Lost is the number of slab samples perf reported lost (ring buffer
	// full). LostByKind splits it per kind where perf tells
	// (PERF_RECORD_LOST_SAMPLES); it is nil where perf only gave the ring
	// buffers' totals (PERF_RECORD_LOST), and then Lost also holds
	// LostOther.
	Lost       uint64
	LostByKind map[event.Kind]uint64
	// LostOther is what perf's sideband event (the "dummy" event perf
	// adds to track COMM/MMAP/FORK while events are disabled) lost in the
	// same buffers: records, not slab events.
	LostOther uint64
	// BufferBytes is the per-CPU ring buffer data size times the CPUs
	// recorded (the header page perf maps on top is not counted, as for
	// the other paths).
	BufferBytes       int
	PerCPUBufferBytes int
	CPUs              int
	// RecordCPUTime is perf's user+sys CPU time over its whole life
	// (ProcessState): the consumer cost, start-up included.
	// StartupCPUTime is the part perf had used when it acknowledged
	// "enable" (exec, opening events, synthesizing /proc); the difference
	// is the cost of the recording window, tear-down included.
	RecordCPUTime  time.Duration
	StartupCPUTime time.Duration
	DataBytes      int64 // perf.data size
	// Window is the wall time from the "enable" to the "disable"
	// acknowledgement.
	Window time.Duration
	// DisableUnacked says perf never acknowledged "disable", so
	// recording ended at SIGINT instead.
	DisableUnacked bool
}

// Total returns captured plus lost over all kinds.
func (r Result) Total() uint64 {
	var n uint64
	for _, c := range r.Captured {
		n += c
	}
	return n + r.Lost
}

// Check compares the run with truth counts (per kind, the truth counter's
// difference over a bracket that encloses Start and Stop). perf's window
// lies inside the bracket, so captured+lost must not exceed truth; see the
// package doc for why it is not equal. Where perf gave no per-kind loss,
// the bound is checked for the sums over the kinds.
func (r Result) Check(truthCounts map[event.Kind]uint64) error {
	var errs []error
	if r.LostByKind != nil {
		for k, c := range r.Captured {
			t, ok := truthCounts[k]
			if !ok {
				errs = append(errs, fmt.Errorf("no truth count for kmem:%s", k))
				continue
			}
			if got := c + r.LostByKind[k]; got > t {
				errs = append(errs, fmt.Errorf("kmem:%s: captured %d + lost %d = %d exceeds the truth count %d: perf saw events outside the truth bracket (read truth before Start and after Stop)", k, c, r.LostByKind[k], got, t))
			}
		}
	} else {
		var t uint64
		for k := range r.Captured {
			t += truthCounts[k]
		}
		if got := r.Total(); got > t {
			errs = append(errs, fmt.Errorf("captured+lost %d exceeds the truth count %d summed over the kinds: perf saw events outside the truth bracket (read truth before Start and after Stop)", got, t))
		}
	}
	return errors.Join(errs...)
}

// CheckWithin checks captured+lost against two truth brackets: outer
// encloses Start and Stop (read before Start, after Stop), inner lies
// inside perf's window (read after Start returned, before Stop was
// called). Start returns only after perf acknowledged "enable" and Stop
// disables before perf exits, so per kind
//
//	inner <= captured + lost <= outer
//
// must hold; it is checked per kind, or for the sums where perf gave no
// per-kind loss.
func (r Result) CheckWithin(inner, outer map[event.Kind]uint64) error {
	errs := []error{r.Check(outer)}
	if r.LostByKind != nil {
		for k, c := range r.Captured {
			if got := c + r.LostByKind[k]; got < inner[k] {
				errs = append(errs, fmt.Errorf("kmem:%s: captured %d + lost %d = %d is below the %d events counted inside perf's window: perf dropped events without reporting them", k, c, r.LostByKind[k], got, inner[k]))
			}
		}
	} else {
		var in uint64
		for k := range r.Captured {
			in += inner[k]
		}
		if got := r.Total(); got < in {
			errs = append(errs, fmt.Errorf("captured+lost %d is below the %d events counted inside perf's window: perf dropped events without reporting them", got, in))
		}
	}
	return errors.Join(errs...)
}
