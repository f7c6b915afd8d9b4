package bench

import (
	"sync"
	"testing"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/perfrecord"
	"github.com/slabbench/slabbench/truth"
	"github.com/slabbench/slabbench/workloads"
)

var (
	perfOnce        sync.Once
	perfUnavailable error
)

func truthTotals(b *testing.B, c *truth.Counter) map[event.Kind]uint64 {
	m := map[event.Kind]uint64{}
	for _, k := range event.AllKinds {
		v, err := c.Total(k)
		if err != nil {
			b.Fatal(err)
		}
		m[k] = v
	}
	return m
}

func delta(after, before map[event.Kind]uint64) map[event.Kind]uint64 {
	d := map[event.Kind]uint64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// benchPerfRecord runs `perf record` on the same tracepoints with the same
// per-CPU buffer memory: the tool a user would reach for instead. perf has
// no in-band window, so the check is a bracket: the hits counted while the
// workload ran (inside perf's enabled window) <= captured + lost <= the
// hits counted around Start and Stop.
func benchPerfRecord(b *testing.B, wcfg workloads.Config, g plan.Geometry) {
	perfOnce.Do(func() { perfUnavailable = perfrecord.Available() })
	if perfUnavailable != nil {
		b.Skip("perf record: ", perfUnavailable)
	}
	if paced(b, wcfg) { // perf record's start-up takes seconds
		return
	}
	before := noneSegment(b, wcfg, b.N/2)
	tc, err := truth.Open(event.AllKinds)
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	outerStart := truthTotals(b, tc)
	s, err := perfrecord.Start(perfrecord.Config{Kinds: event.AllKinds, PerCPUBufferBytes: g.SubbufSize * g.NumSubbufs})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	innerStart := truthTotals(b, tc)
	wr := timeWorkload(b, wcfg)
	inner := delta(truthTotals(b, tc), innerStart)
	res, err := s.Stop()
	if err != nil {
		b.Fatal(err)
	}
	outer := delta(truthTotals(b, tc), outerStart)
	if err := res.CheckWithin(inner, outer); err != nil {
		b.Fatalf("perf record accounting outside the truth bracket, nothing reported: %v", err)
	}
	var captured, innerEvents uint64
	for _, k := range event.AllKinds {
		captured += res.Captured[k]
		innerEvents += inner[k]
	}
	// perf's start-up (scanning /proc) is not per-event work.
	consumer := (res.RecordCPUTime - res.StartupCPUTime).Nanoseconds()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	base := pairedBase(b, before, noneSegment(b, wcfg, b.N-b.N/2))
	requireSteady(b, uint64(res.DataBytes), res.BufferBytes)
	report(b, captured, res.Lost, innerEvents, wr.Elapsed, res.Window, consumer, res.BufferBytes, base, wcfg.Rate)
}
