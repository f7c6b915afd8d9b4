package bpftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/slabbench/slabbench/event"
)

// kernelCounts is what the programs counted, per kind and CPU, and the
// kernel's own count of skipped probe runs per kind.
type kernelCounts struct {
	perCPU      [event.NumKinds][]slabSlabBpfKindStats
	probeMisses [event.NumKinds]uint64
}

func (c *Capture) readKernelCounts() (kernelCounts, error) {
	var kc kernelCounts
	m := c.coll.Maps["kind_stats"]
	for _, k := range c.cfg.Kinds {
		if err := m.Lookup(uint32(k), &kc.perCPU[k]); err != nil {
			return kc, fmt.Errorf("reading the %s counters: %w", k, err)
		}
		if s, err := c.kindStats(k); err == nil {
			kc.probeMisses[k] = s.RecursionMisses
		}
	}
	return kc, nil
}

// ProbeTime returns how often the programs ran and the time they spent
// running, summed over all of them, from the kernel's run-time statistics
// (Config.ProbeTime; zero without it). Call it before Close.
func (c *Capture) ProbeTime() (runs uint64, total time.Duration, err error) {
	for _, k := range c.cfg.Kinds {
		st, err := c.kindStats(k)
		if err != nil {
			return 0, 0, err
		}
		runs += st.RunCount
		total += st.Runtime
	}
	return runs, total, nil
}

// MaxBacklogBytes returns the most bytes one buffer held unread when the
// reader took a record (ring buffer: producer - consumer position; perf
// buffer: data_head - data_tail of one CPU; headers included); 0 for
// cilium/ebpf's perf reader, which does not show them. Read it once the
// consumer has stopped.
func (c *Capture) MaxBacklogBytes() uint64 {
	if c.own != nil {
		return c.own.backlog()
	}
	return c.maxBacklog
}

// TakeBacklogBytes returns the most bytes one buffer held unread when the
// reader took a record (as MaxBacklogBytes) since its last call, and
// starts a new window: sampled while the capture runs, it gives the
// backlog over time. ok is false for cilium/ebpf's readers.
func (c *Capture) TakeBacklogBytes() (b uint64, ok bool) {
	if c.own == nil {
		return 0, false
	}
	return c.own.takeBacklog(), true
}

// Wakeups returns how often slabbench's own reader woke up from a poll
// with a buffer readable; 0 for cilium/ebpf's readers, which do not say.
// Read it once the consumer has stopped.
func (c *Capture) Wakeups() uint64 {
	if c.own != nil {
		return c.own.wakeups()
	}
	return 0
}

// Waits returns how often the reader waited for a record, and whether it
// counts them (slabbench's own reader does, cilium/ebpf's do not). Only
// the reading goroutine may call it.
func (c *Capture) Waits() (uint64, bool) {
	if c.own != nil {
		return c.own.waits(), true
	}
	return 0, false
}

// PerfLostRecords returns the records the perf buffer reader was told the
// kernel could not write (PERF_RECORD_LOST). It never exceeds the
// programs' drop count and can lag it.
func (c *Capture) PerfLostRecords() uint64 {
	if pr, ok := c.own.(*perfReader); ok {
		return pr.lost
	}
	return c.perfLostRecords
}

// Stats returns the accounting per CPU and kind. Call it after Stop, once
// the consumer has drained the reader; after Close it returns the
// producer's counters as they were at Close.
func (c *Capture) Stats() (event.Stats, error) {
	st := event.Stats{TruthChecked: c.cfg.Truth}
	var kc kernelCounts
	if c.final != nil {
		kc = *c.final
	} else {
		var err error
		if kc, err = c.readKernelCounts(); err != nil {
			return st, err
		}
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return st, err
	}
	st.StacksTaken = c.cfg.StackDepth > 0
	st.RepeatsCounted = c.cfg.Truth && !c.cfg.Attach.IsFunctionProbe()
	if c.foreign != nil {
		st.ForeignPrograms = c.foreign.Seen()
	}
	st.PerCPU = make([]event.CPUStats, ncpu)
	for cpu := range st.PerCPU {
		st.PerCPU[cpu].CPU = cpu
	}
	idle := c.idleSinceAttach()
	for _, k := range c.cfg.Kinds {
		for cpu, bks := range kc.perCPU[k] {
			ks := bks.S
			counts := event.Counts{
				Captured: c.seq.Captured(cpu, k),
				Lost:     ks.Drops,
				Attempts: ks.Attempts,
				SeqGaps:  c.seq.Gaps(cpu, k, ks.Attempts),
				Disorder: c.seq.Disorder(cpu, k),
			}
			if c.cfg.StackDepth > 0 {
				counts.StacksTaken, counts.StacksFull = bks.StacksTaken, bks.StacksFull
				counts.StackCollisions, counts.StacksFailed = bks.StackCollisions, bks.StacksFailed
			}
			if c.cfg.Truth {
				if ks.TruthErrors > 0 {
					return st, fmt.Errorf("cpu %d %s: the truth counter could not be read on %d hits", cpu, k, ks.TruthErrors)
				}
				if bks.PendingFull > 0 {
					return st, fmt.Errorf("cpu %d %s: %d calls stamped at entry found no room to wait for their exit (more than 8 nested in one task, or 8192 in flight)", cpu, k, bks.PendingFull)
				}
				if bks.TruthStamps > 0 {
					// Repeated stamps are calls the counting kprobe
					// skipped (function entry probes; slab_event.h).
					counts.EdgeNested = c.edgeNested(bks)
					counts.Truth = ks.TruthLast - ks.TruthFirst + 1 + ks.TruthRepeats + counts.EdgeNested
					counts.Uncounted = ks.TruthRepeats
					counts.TruthIdleNs = idle.ns(c.truth.CPUs(), k, cpu)
					counts.StampRepeats = bks.TruthStampRepeats
					counts.StampsFell = bks.TruthStampsFell
				}
			}
			st.PerCPU[cpu].Kinds[k] = counts
			st.PerCPU[cpu].Repeats[k] = c.seq.Repeats(cpu, k)
		}
		st.ProbeMisses[k] = kc.probeMisses[k]
	}
	// A tracepoint program the kernel skips takes the truth counter's
	// count of that hit with it: add the kernel's own count of them where
	// it keeps one, else the loss is only a lower bound.
	if c.cfg.Truth && c.cfg.Attach == AttachTracepoint {
		if countsTracepointMisses() {
			st.Hidden = st.ProbeMisses
		} else {
			st.HiddenUncounted = true
		}
	}
	return st, nil
}

// RecursionMisses returns, per kind, how often the kernel has skipped the
// program for recursion so far (its run-time statistics; 0 where the
// kernel keeps none, as 6.1 does for tracepoint programs). A live view
// calls it while the consumer reads; it fails once the capture is closed.
func (c *Capture) RecursionMisses() ([event.NumKinds]uint64, error) {
	var m [event.NumKinds]uint64
	for _, k := range c.cfg.Kinds {
		s, err := c.kindStats(k)
		if err != nil {
			return m, err
		}
		m[k] = s.RecursionMisses
	}
	return m, nil
}

// kindStats sums the kernel's run-time statistics of kind k's programs:
// the one writing its records and, for an allocation under fentry with
// the truth on, the one stamping its calls at entry.
func (c *Capture) kindStats(k event.Kind) (ebpf.ProgramStats, error) {
	progs := []*ebpf.Program{c.progs[k]}
	if p := c.entryProgs[k]; p != nil {
		progs = append(progs, p)
	}
	var sum ebpf.ProgramStats
	for _, p := range progs {
		s, err := p.Stats()
		if err != nil {
			return sum, fmt.Errorf("run-time statistics of the %s program: %w", k, err)
		}
		sum.RunCount += s.RunCount
		sum.Runtime += s.Runtime
		sum.RecursionMisses += s.RecursionMisses
	}
	return sum, nil
}

// edgeNested returns the hits the counter counted just outside the span
// of stamps on one CPU and kind. A raw tracepoint program stamps after
// perf's probe has counted the hit, so a same-kind hit nested between the
// two (an interrupt) on the window's first hit is stamped first, and the
// outer hit, stamped with the same count, was counted before the span:
// the repeats before the stamps first rose. A tracepoint program stamps
// before perf counts, so the same on the window's last hit counts the
// outer hit after the span: the repeats since the stamps last rose.
// Function probes count every repeat as a call the kprobe skipped.
//
// Only one hit per interrupt level can be outer to another at an edge,
// so at most maxEdgeNested repeats are edge nesting: more are hits the
// counter did not count (another program on the tracepoint returning 0
// hides them from it), which the truth check must see.
func (c *Capture) edgeNested(bks slabSlabBpfKindStats) uint64 {
	switch c.cfg.Attach {
	case AttachRawTP:
		return min(bks.TruthLeadingRepeats, maxEdgeNested)
	case AttachTracepoint:
		return min(bks.TruthTrailingRepeats, maxEdgeNested)
	}
	return 0
}

// maxEdgeNested is how many hits can be outer to a nested one on one CPU:
// one in task context, one in softirq, one in hardirq.
const maxEdgeNested = 3

// StackFrames returns the frames (kernel addresses, innermost first) of
// the stack id in the stacks map (Config.StackDepth > 0).
func (c *Capture) StackFrames(id uint32) ([]uint64, error) {
	if c.cfg.StackDepth == 0 {
		return nil, errors.New("no stacks taken: capture with --stacks")
	}
	raw, err := c.coll.Maps["stacks"].LookupBytes(id)
	if err != nil || raw == nil {
		return nil, fmt.Errorf("stack %d: not in the stack map (%v)", id, err)
	}
	var frames []uint64
	for i := 0; i+8 <= len(raw); i += 8 {
		ip := binary.LittleEndian.Uint64(raw[i:])
		if ip == 0 {
			break
		}
		frames = append(frames, ip)
	}
	return frames, nil
}

// truthIdle is the truth counter's idle time (truth.Counter.Idle) per kind
// and counted CPU.
type truthIdle [event.NumKinds][]uint64

// readTruthIdle reads the truth counter's idle times; nil without one.
func (c *Capture) readTruthIdle() (*truthIdle, error) {
	if c.truth == nil {
		return nil, nil
	}
	var ti truthIdle
	for _, k := range c.cfg.Kinds {
		for i := range c.truth.CPUs() {
			v, err := c.truth.Idle(k, i)
			if err != nil {
				return nil, err
			}
			ti[k] = append(ti[k], v)
		}
	}
	return &ti, nil
}

// idleSinceAttach returns the truth counter's idle times while the
// programs were attached: until they were detached, or until now while
// they still are (one read of every counter); nil without them.
func (c *Capture) idleSinceAttach() *truthIdle {
	if c.truth == nil || c.idleAtAttach == nil {
		return nil
	}
	end := c.idleAtStop
	if end == nil {
		var err error
		if end, err = c.readTruthIdle(); err != nil || end == nil {
			return nil
		}
	}
	var d truthIdle
	for k := range end {
		for i := range end[k] {
			d[k] = append(d[k], end[k][i]-c.idleAtAttach[k][i])
		}
	}
	return &d
}

// ns returns kind k's idle time on cpu, 0 where there is none.
func (ti *truthIdle) ns(cpus []int, k event.Kind, cpu int) uint64 {
	i := slices.Index(cpus, cpu)
	if ti == nil || i < 0 || i >= len(ti[k]) {
		return 0
	}
	return ti[k][i]
}
