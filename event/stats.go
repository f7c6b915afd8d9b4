package event

import "fmt"

// Counts is one row of the loss accounting: Captured + Lost must equal
// Truth for tracepoint captures with the truth counter on.
type Counts struct {
	Captured uint64 `json:"captured"` // records the reader returned
	Lost     uint64 `json:"lost"`     // records the producer counted as lost
	Truth    uint64 `json:"truth"`    // hits the kernel's own counter saw
	// Attempts is the number of hits the probe handled (the per-CPU
	// sequence numbers it stamped).
	Attempts uint64 `json:"attempts"`
	// Missed is the part of Lost the probe never saw: hits the kernel
	// counted but did not run the probe for (BPF recursion protection).
	Missed uint64 `json:"missed,omitempty"`
	// SeqGaps is the number of sequence numbers the reader never saw;
	// it must equal Lost - Missed.
	SeqGaps uint64 `json:"seq_gaps"`
	// Disorder counts records whose sequence number was at or below one
	// already seen; it must be 0.
	Disorder uint64 `json:"disorder,omitempty"`
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
}

// CPUStats is the accounting of one CPU, per kind.
type CPUStats struct {
	CPU   int
	Kinds [NumKinds]Counts
	// MaxBacklog is the largest number of full sub-buffers (relay) seen
	// waiting for the reader on this CPU; 0 where the path has none.
	MaxBacklog int
}

// Stats is what a capture reports when it stops.
type Stats struct {
	PerCPU []CPUStats
	// TruthChecked says whether the in-band truth counter was on, so
	// that Truth is meaningful.
	TruthChecked bool
	// ProbeMisses is the kernel's own count of hits it skipped the probe
	// for (BPF recursion protection), per kind, where the path has one.
	ProbeMisses [NumKinds]uint64
}

// Kind totals one kind over all CPUs.
func (s *Stats) Kind(k Kind) Counts {
	var c Counts
	for i := range s.PerCPU {
		c.Add(s.PerCPU[i].Kinds[k])
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

// Verify checks the accounting rules on every CPU and kind:
// captured + lost == attempts + missed, sequence gaps == lost - missed
// with no record out of order,
// and, when the truth counter was on, captured + lost == truth. The error
// names the first CPU and kind that break a rule.
func (s *Stats) Verify() error {
	for _, cs := range s.PerCPU {
		for _, k := range AllKinds {
			c := cs.Kinds[k]
			if c.Captured+c.Lost != c.Attempts+c.Missed {
				return fmt.Errorf("cpu %d %s: captured %d + lost %d != attempts %d + missed %d",
					cs.CPU, k, c.Captured, c.Lost, c.Attempts, c.Missed)
			}
			if c.SeqGaps != c.Lost-c.Missed || c.Disorder != 0 {
				return fmt.Errorf("cpu %d %s: reader saw %d sequence gaps and %d out-of-order records, producer counted %d dropped",
					cs.CPU, k, c.SeqGaps, c.Disorder, c.Lost-c.Missed)
			}
			if s.TruthChecked && c.Captured+c.Lost != c.Truth {
				return fmt.Errorf("cpu %d %s: captured %d + lost %d != truth %d",
					cs.CPU, k, c.Captured, c.Lost, c.Truth)
			}
		}
	}
	return nil
}
