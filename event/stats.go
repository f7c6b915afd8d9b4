package event

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Counts is one row of the loss accounting: Captured + Lost must equal
// Truth for tracepoint captures with the truth counter on.
type Counts struct {
	Captured uint64 `json:"captured"` // records the reader returned
	Lost     uint64 `json:"lost"`     // drops plus missed hits
	Truth    uint64 `json:"truth"`    // hits the kernel's own counter saw
	// Attempts is the number of hits the probe handled (the sequence
	// numbers it stamped).
	Attempts uint64 `json:"attempts"`
	// Missed is the part of Lost the probe never saw: hits the kernel
	// counted inside the window but did not run the probe for (BPF
	// recursion protection). Only kind totals carry it (see Stats.Missed).
	Missed uint64 `json:"missed,omitempty"`
	// SeqGaps is the number of sequence numbers the reader never saw;
	// it must equal Lost - Missed, the producer's drop count.
	SeqGaps uint64 `json:"seq_gaps"`
	// Disorder counts records whose sequence number was at or below one
	// already seen; it must be 0.
	Disorder uint64 `json:"disorder,omitempty"`
	// Uncounted is the part of Truth the counter itself did not count:
	// calls a function entry probe saw that the counting kprobe skipped
	// (repeated stamps; see slab_event.h). 0 for tracepoints and relay.
	Uncounted uint64 `json:"uncounted,omitempty"`
	// Hidden is the part of Missed (and of Truth) the truth counter did
	// not see: hits the kernel skipped a tracepoint program for, from its
	// own count (Stats.Hidden). Only kind totals carry it.
	Hidden uint64 `json:"hidden,omitempty"`
	// ForeignHidden is the part of Truth the counter did not count
	// because another tool's tracepoint program on the same tracepoint
	// (Stats.ForeignPrograms) returned 0 for those hits, which skips
	// their perf events: the probe's attempts beyond the counter's. Only
	// kind totals carry it.
	ForeignHidden uint64 `json:"foreign_hidden,omitempty"`
	// EdgeNested is the part of Truth counted just outside the span of
	// stamps: at a window's edge, a hit nested between another's count
	// and its stamp moves the span past the outer hit's count (raw
	// tracepoints at the start, tracepoint programs at the end).
	EdgeNested uint64 `json:"edge_nested,omitempty"`
	// TruthIdleNs, StampRepeats and StampsFell are evidence, kept by the
	// eBPF paths, of hits the truth counter may not have counted: the
	// nanoseconds the counting event was enabled but idle (scheduled out
	// or stopped) while the programs were attached, stamps equal to the
	// hit before's on the same CPU and kind, and stamps below it (the
	// span of stamps then undercounts). Verify names them when the truth
	// disagrees.
	TruthIdleNs  uint64 `json:"truth_idle_ns,omitempty"`
	StampRepeats uint64 `json:"stamp_repeats,omitempty"`
	StampsFell   uint64 `json:"stamps_fell,omitempty"`
	// With stacks taken (capture --stacks), every allocation the probe
	// handled is in exactly one of: StacksTaken (its record carries a
	// stack id), StacksFull (the stack map had no room), StackCollisions
	// (another stack held its hash bucket), StacksFailed (the kernel could
	// not walk it). The records without a stack are captured all the same.
	StacksTaken     uint64 `json:"stacks_taken,omitempty"`
	StacksFull      uint64 `json:"stacks_full,omitempty"`
	StackCollisions uint64 `json:"stack_collisions,omitempty"`
	StacksFailed    uint64 `json:"stacks_failed,omitempty"`
}

// Add accumulates o into c.
func (c *Counts) Add(o Counts) {
	c.Captured += o.Captured
	c.Lost += o.Lost
	c.Truth += o.Truth
	c.Attempts += o.Attempts
	c.Missed += o.Missed
	c.SeqGaps += o.SeqGaps
	c.Disorder += o.Disorder
	c.Uncounted += o.Uncounted
	c.Hidden += o.Hidden
	c.ForeignHidden += o.ForeignHidden
	c.EdgeNested += o.EdgeNested
	c.TruthIdleNs += o.TruthIdleNs
	c.StampRepeats += o.StampRepeats
	c.StampsFell += o.StampsFell
	c.StacksTaken += o.StacksTaken
	c.StacksFull += o.StacksFull
	c.StackCollisions += o.StackCollisions
	c.StacksFailed += o.StacksFailed
}

// CPUStats is the accounting of one CPU, per kind. Lost is the
// producer's drop count there; Truth is the span of that CPU's counter
// stamps.
type CPUStats struct {
	CPU   int
	Kinds [NumKinds]Counts
	// MaxBacklog is the largest number of full sub-buffers (relay) seen
	// waiting for the reader on this CPU; 0 where the path has none.
	MaxBacklog int
	// Repeats is, per kind, the reader's evidence of repeated truth
	// stamps among the records it read (nil: none), which Verify names
	// when the truth does not balance.
	Repeats [NumKinds]*RepeatEvidence `json:"-"`
}

// Stats is what a capture reports when it stops.
//
// Sequence numbers, drops and captures are exact per CPU; the truth
// counter is compared per kind, over all CPUs, where missed hits (truth
// beyond attempts) are accounted.
//
// The truth counter is exact only while no other tool's tracepoint-type
// BPF program is attached to the same kmem tracepoints: a hit it returns
// 0 for, or the kernel skips it for, has its perf events skipped, our
// counter among them, while our probes still see the hit. Captures list
// such programs (ForeignPrograms). Run one capture at a time
// (docs/limits.md).
type Stats struct {
	PerCPU []CPUStats
	// TruthChecked says whether the in-band truth counter was on, so
	// that Truth is meaningful.
	TruthChecked bool
	// ProbeMisses is the kernel's own count of hits it skipped the probe
	// for (BPF recursion protection), per kind, where the path has one.
	ProbeMisses [NumKinds]uint64
	// Hidden is, per kind, the hits the kernel skipped a tracepoint
	// program for, from its own count: it skips the hit's perf events,
	// the truth counter among them, with the program
	// (perf_trace_run_bpf_submit), so they are in neither the probe's
	// attempts nor the truth window, and Kind adds them to both Truth and
	// Missed. HiddenUncounted says the kernel keeps no such count (before
	// Linux 6.7), so a tracepoint capture's loss is a lower bound.
	Hidden          [NumKinds]uint64
	HiddenUncounted bool
	// StacksTaken says the probes took each allocation's stack, so that
	// every allocation attempt is in one of the Stacks* counts.
	StacksTaken bool
	// ForeignPrograms lists, per kind, the BPF programs not the
	// capture's own that the kernel had attached to the kind's
	// tracepoint just before the window opened or after it closed
	// (truth.TracepointPrograms). One that returns 0 for a hit hides it
	// from the truth counter; Kind counts the attempts beyond the
	// counter's as ForeignHidden, and the loss is then a lower bound.
	ForeignPrograms [NumKinds][]uint32
	// RepeatsCounted says the probes counted repeated stamps
	// (Counts.StampRepeats), which every hit hidden from the counter
	// leaves: Verify then checks ForeignHidden against them.
	RepeatsCounted bool
}

// LossLowerBound says the truth counter may have missed hits no count
// covers: before Linux 6.7, the hits the kernel skips a tracepoint
// program for, or any hit while another program was on the tracepoint.
func (s *Stats) LossLowerBound() bool {
	if s.HiddenUncounted {
		return true
	}
	for _, ids := range s.ForeignPrograms {
		if len(ids) > 0 {
			return true
		}
	}
	return false
}

// Kind totals one kind over all CPUs. With the truth counter on, hits
// the truth counter saw beyond the probe's attempts are missed hits, and
// count as lost.
func (s *Stats) Kind(k Kind) Counts {
	var c Counts
	for i := range s.PerCPU {
		c.Add(s.PerCPU[i].Kinds[k])
	}
	if s.TruthChecked && len(s.ForeignPrograms[k]) > 0 && c.Attempts > c.Truth {
		c.ForeignHidden = c.Attempts - c.Truth
		c.Truth += c.ForeignHidden
	}
	if s.TruthChecked && c.Truth > c.Attempts {
		c.Missed = c.Truth - c.Attempts
		c.Lost += c.Missed
	}
	if s.TruthChecked && s.Hidden[k] > 0 {
		c.Hidden = s.Hidden[k]
		c.Truth += c.Hidden
		c.Missed += c.Hidden
		c.Lost += c.Hidden
	}
	return c
}

// Total sums every kind over all CPUs.
func (s *Stats) Total() Counts {
	var c Counts
	for _, k := range AllKinds {
		c.Add(s.Kind(k))
	}
	return c
}

// Verify checks the accounting rules. On every CPU and kind: captured +
// drops == attempts, the reader's sequence gaps == drops, and no record
// out of order. For every kind, when the truth counter was on: captured +
// lost == truth. (The kernel's own count of skipped probe runs,
// ProbeMisses, is reported beside Missed but not required to match: it
// covers the program's whole life, and 6.1 keeps none for tracepoint
// programs.) The error names the first CPU or kind that breaks a rule.
func (s *Stats) Verify() error {
	for _, cs := range s.PerCPU {
		for _, k := range AllKinds {
			c := cs.Kinds[k]
			if c.Captured+c.Lost != c.Attempts {
				return fmt.Errorf("cpu %d %s: captured %d + dropped %d != attempts %d",
					cs.CPU, k, c.Captured, c.Lost, c.Attempts)
			}
			if c.SeqGaps != c.Lost || c.Disorder != 0 {
				return fmt.Errorf("cpu %d %s: reader saw %d sequence gaps and %d out-of-order records, producer counted %d dropped",
					cs.CPU, k, c.SeqGaps, c.Disorder, c.Lost)
			}
			if stacks := c.StacksTaken + c.StacksFull + c.StackCollisions + c.StacksFailed; s.StacksTaken && k.IsAlloc() && stacks != c.Attempts {
				return fmt.Errorf("cpu %d %s: %d stacks taken + %d map full + %d collisions + %d failed != %d attempts",
					cs.CPU, k, c.StacksTaken, c.StacksFull, c.StackCollisions, c.StacksFailed, c.Attempts)
			}
		}
	}
	if !s.TruthChecked {
		return nil
	}
	for _, k := range AllKinds {
		c := s.Kind(k)
		if s.RepeatsCounted && c.ForeignHidden > c.StampRepeats-c.EdgeNested {
			return fmt.Errorf("%s: %d hits counted as hidden by programs %v on the tracepoint, but only %d stamps repeat the one before (each hidden hit leaves one; the counter's own evidence: %s)",
				k, c.ForeignHidden, s.ForeignPrograms[k], c.StampRepeats-c.EdgeNested, s.truthEvidence(k))
		}
		if c.Captured+c.Lost != c.Truth {
			return fmt.Errorf("%s: captured %d + lost %d != truth %d (attempts %d; the counter's own evidence: %s)",
				k, c.Captured, c.Lost, c.Truth, c.Attempts, s.truthEvidence(k))
		}
	}
	return nil
}

// truthEvidence says, per CPU, what the probes saw of the truth counter
// for kind k: the hits they handled against the hits it counted, how
// long it was idle and how often two hits carried the same stamp.
func (s *Stats) truthEvidence(k Kind) string {
	var parts []string
	for _, cs := range s.PerCPU {
		c := cs.Kinds[k]
		part := fmt.Sprintf("cpu %d: %d hits, %d counted, the counter idle for %d ns, %d repeated stamps, %d below the one before",
			cs.CPU, c.Attempts, c.Truth, c.TruthIdleNs, c.StampRepeats, c.StampsFell)
		if ev := cs.Repeats[k]; ev != nil {
			part += " (" + ev.String() + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// String says which threads' records repeated a stamp, over what time,
// and the first few, with their times and call sites.
func (ev *RepeatEvidence) String() string {
	pids := slices.SortedFunc(maps.Keys(ev.Tasks), func(a, b uint32) int {
		return cmp.Or(cmp.Compare(ev.Tasks[b], ev.Tasks[a]), cmp.Compare(a, b))
	})
	var tasks []string
	for _, pid := range pids {
		tasks = append(tasks, fmt.Sprintf("%s ×%d", ev.task(pid), ev.Tasks[pid]))
	}
	if ev.Other > 0 {
		tasks = append(tasks, fmt.Sprintf("other threads ×%d", ev.Other))
	}
	var first []string
	for _, r := range ev.Samples {
		site := ev.Sites[r.CallSite]
		if site == "" {
			site = fmt.Sprintf("%#x", r.CallSite)
		}
		first = append(first, fmt.Sprintf("%s at %d ns from %s", ev.task(r.Pid), r.TsNs, site))
	}
	return fmt.Sprintf("of the records read, %d repeated the stamp before, from %d to %d ns (%.3f ms), by %s; the first: %s",
		ev.Seen, ev.FirstNs, ev.LastNs, float64(ev.LastNs-ev.FirstNs)/1e6, strings.Join(tasks, ", "), strings.Join(first, "; "))
}

// task names a thread: its pid, and its comm where known.
func (ev *RepeatEvidence) task(pid uint32) string {
	if c := ev.Comms[pid]; c != "" {
		return fmt.Sprintf("pid %d (%s)", pid, c)
	}
	return fmt.Sprintf("pid %d", pid)
}
