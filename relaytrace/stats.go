package relaytrace

import (
	"fmt"
	"time"

	"github.com/slabbench/slabbench/event"
)

// ProbeTime returns how often the module's emitting probe ran and the
// time spent inside its probes (pre and emit), summed over the CPUs; zero
// unless Config.ProbeTime. Call it before Close.
func (c *Capture) ProbeTime() (runs uint64, total time.Duration, err error) {
	ms, err := readModuleStats()
	if err != nil {
		return 0, 0, err
	}
	for _, cs := range ms.cpus {
		runs += cs.probeRuns
		total += time.Duration(cs.probeNs)
	}
	return runs, total, nil
}

// BufferBytes is the relay buffer memory: sub-buffer size * count * CPUs.
func (c *Capture) BufferBytes() int {
	return c.cfg.SubbufSize * c.cfg.NumSubbufs * len(c.cpus)
}

// Stats returns the accounting. Lost is the records the module dropped
// (buffer full) plus, in overwrite mode, the records of overwritten
// sub-buffers that this reader had not returned. It is final once Stop
// has been called and ReadInto has drained the buffers; after Close it
// returns what it was at Close.
func (c *Capture) Stats() (event.Stats, error) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.final != nil {
		return *c.final, nil
	}
	// The reader holds mu while it reads; after it drained (or from
	// its own goroutine) nothing moves.
	if c.mu.TryLock() {
		defer c.mu.Unlock()
	}
	return c.statsLocked()
}

func (c *Capture) statsLocked() (event.Stats, error) {
	st := event.Stats{TruthChecked: c.cfg.Truth, StacksTaken: c.cfg.StackDepth > 0}
	if c.foreign != nil {
		st.ForeignPrograms = c.foreign.Seen()
	}
	ms, err := readModuleStats()
	if err != nil {
		return st, err
	}
	byCPU := map[int]*cpuModuleStats{}
	for i := range ms.cpus {
		byCPU[ms.cpus[i].cpu] = &ms.cpus[i]
	}
	for _, cb := range c.cpus {
		cs := event.CPUStats{CPU: cb.cpu}
		m := byCPU[cb.cpu]
		if m == nil {
			return st, fmt.Errorf("relay stats: no line for cpu %d", cb.cpu)
		}
		cs.MaxBacklog = int(m.backlog)
		for _, k := range event.AllKinds {
			if cs.Kinds[k], err = kindCounts(cb.cpu, k, &c.tracker, cb.w, m.kinds[k], c.cfg.Truth); err != nil {
				return st, err
			}
		}
		st.PerCPU = append(st.PerCPU, cs)
	}
	return st, nil
}
