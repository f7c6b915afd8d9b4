package kleak

import (
	"time"

	"github.com/slabbench/slabbench/event"
)

// Accounting says how far a snapshot's figures can be off: what the
// capture lost, and what the table could not follow.
type Accounting struct {
	Captured uint64 `json:"captured"`
	// Dropped (buffer full) and Missed (probe not run) over the window.
	// Until Final they come from the gaps between records seen so far,
	// so a loss after a CPU's last record shows up later.
	Dropped uint64 `json:"dropped"`
	Missed  uint64 `json:"missed"`
	// DroppedFrees and MissedFrees are the part of them that were frees
	// (kfree, kmem_cache_free): each may have left an allocation
	// counted as outstanding.
	DroppedFrees uint64 `json:"dropped_frees"`
	MissedFrees  uint64 `json:"missed_frees"`
	// ProbeMisses is the kernel's own count of probe runs it skipped for
	// recursion (eBPF), ProbeMissedFrees the part on the free kinds. On
	// tracepoint attach the kernel skips the truth counter with the
	// program, so these hits are missing from Missed: the bounds take
	// the larger of the two.
	ProbeMisses      uint64 `json:"probe_misses"`
	ProbeMissedFrees uint64 `json:"probe_missed_frees"`
	// Untracked allocations arrived while the table was full.
	Untracked uint64 `json:"untracked_allocs"`
	// UnmatchedFrees freed a pointer the table did not hold: allocated
	// before the window, by a process the filter leaves out, untracked,
	// or whose allocation was lost.
	UnmatchedFrees uint64 `json:"unmatched_frees"`
	// ReusedWithoutFree: an allocation returned a pointer the table held,
	// so that pointer's free was never seen (lost, or not traced); the
	// old entry is replaced.
	ReusedWithoutFree uint64 `json:"reused_without_free"`
	// Reordered records were read after a later record of the same
	// pointer, from another CPU's buffer (the buffers are not read in
	// time order): their stamps place them, and they change no count.
	Reordered    uint64 `json:"reordered"`
	NullFrees    uint64 `json:"null_frees"`    // kfree(NULL) and the like, traced but freeing nothing
	FailedAllocs uint64 `json:"failed_allocs"` // allocations that returned NULL
	// Final: the loss counts are the capture's own, exact, taken after
	// it stopped.
	Final bool `json:"final"`
}

// OverstatedBy bounds how many of the outstanding allocations may have
// been freed without the free reaching the tracker.
func (a Accounting) OverstatedBy() uint64 {
	return a.DroppedFrees + max(a.MissedFrees, a.ProbeMissedFrees)
}

// UnderstatedBy bounds how many outstanding allocations the table may not
// show: untracked ones, and lost allocations (which also show up as
// unmatched frees when freed).
func (a Accounting) UnderstatedBy() uint64 {
	return a.Untracked + (a.Dropped - a.DroppedFrees) + max(a.Missed-a.MissedFrees, a.ProbeMisses-a.ProbeMissedFrees)
}

// Site is one allocation call site in a snapshot, or, when the capture
// takes stacks, one stack through it (HasStack; Stack is the id in the
// capture's stack map).
type Site struct {
	Address  uint64
	Stack    uint32
	HasStack bool
	Family   Family
	// In the interval since the previous snapshot. Frees count the frees
	// of allocations made here, wherever the free was called.
	Allocs, Frees, Bytes uint64
	// Since the tracker started.
	TotalAllocs, TotalFrees uint64
	// Outstanding allocations made here at least MinAge ago and not freed.
	Outstanding, OutstandingBytes uint64
	Oldest                        time.Duration // age of the oldest outstanding one
	Untracked                     uint64        // allocations made here while the table was full
}

// FamilyTotals is one family's line in a snapshot.
type FamilyTotals struct {
	Family                        Family
	Allocs, Frees, Bytes          uint64 // in the interval
	Outstanding, OutstandingBytes uint64
}

// Snapshot is the state at the end of one interval.
type Snapshot struct {
	Sites      []Site // every site with an allocation or free in the interval, or outstanding ones
	Families   [numFamilies]FamilyTotals
	Accounting Accounting
	Tracked    int // allocations in the table
	MaxTracked int
	MinAge     time.Duration
}

// Snapshot closes the interval: it returns the per-site counts since the
// previous one and what is outstanding at least minAge old at nowNs
// (CLOCK_MONOTONIC, as the records' stamps), then starts a new interval.
// It walks the whole table, holding off Observe meanwhile.
func (t *Tracker) Snapshot(nowNs uint64, minAge time.Duration) Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	type outstanding struct {
		n, bytes, oldestTs uint64
	}
	out := map[siteKey]*outstanding{}
	var famOut [numFamilies]outstanding
	for _, a := range t.table {
		if a.ts > nowNs || time.Duration(nowNs-a.ts) < minAge {
			continue
		}
		o := out[a.site]
		if o == nil {
			o = &outstanding{oldestTs: a.ts}
			out[a.site] = o
		}
		o.n++
		o.bytes += a.bytes
		o.oldestTs = min(o.oldestTs, a.ts)
		famOut[a.fam].n++
		famOut[a.fam].bytes += a.bytes
	}
	snap := Snapshot{Accounting: t.acct, Tracked: len(t.table), MaxTracked: t.cfg.MaxTracked, MinAge: minAge}
	for key, s := range t.sites {
		o := out[key]
		if s.interval == (counts{}) && o == nil {
			continue
		}
		row := Site{Address: key.addr, Stack: key.stack, HasStack: key.hasStack, Family: s.fam, Allocs: s.interval.allocs,
			Frees: s.interval.frees, Bytes: s.interval.bytes, Untracked: s.untracked}
		s.total.add(s.interval)
		s.interval = counts{}
		row.TotalAllocs, row.TotalFrees = s.total.allocs, s.total.frees
		if o != nil {
			row.Outstanding, row.OutstandingBytes = o.n, o.bytes
			row.Oldest = time.Duration(nowNs - o.oldestTs)
		}
		snap.Sites = append(snap.Sites, row)
	}
	for f := range t.fam {
		fc := t.fam[f]
		snap.Families[f] = FamilyTotals{Family: Family(f), Allocs: fc.allocs, Frees: fc.frees,
			Bytes: fc.bytes, Outstanding: famOut[f].n, OutstandingBytes: famOut[f].bytes}
		t.fam[f] = counts{}
	}
	return snap
}

// SetProbeMisses records the kernel's count of skipped probe runs so
// far, per kind (see Accounting.ProbeMisses).
func (t *Tracker) SetProbeMisses(m [event.NumKinds]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acct.ProbeMisses, t.acct.ProbeMissedFrees = sumKinds(m)
}

// Finalize replaces the loss counts, taken from the records so far, with
// the capture's own exact ones, per kind, once it has stopped and been
// drained.
func (t *Tracker) Finalize(dropped, missed [event.NumKinds]uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acct.Dropped, t.acct.DroppedFrees = sumKinds(dropped)
	t.acct.Missed, t.acct.MissedFrees = sumKinds(missed)
	t.acct.Final = true
}

// sumKinds returns the total of per-kind counts and the part of it on
// the free kinds.
func sumKinds(m [event.NumKinds]uint64) (all, frees uint64) {
	for _, k := range event.AllKinds {
		all += m[k]
		if !k.IsAlloc() {
			frees += m[k]
		}
	}
	return all, frees
}

// BySite merges the rows of one call site's stacks into one row per call
// site (the view's default grouping); rows without stacks pass as they are.
func BySite(rows []Site) []Site {
	var merged []Site
	at := map[uint64]int{}
	for _, r := range rows {
		i, ok := at[r.Address]
		if !ok {
			r.Stack, r.HasStack = 0, false
			at[r.Address] = len(merged)
			merged = append(merged, r)
			continue
		}
		m := &merged[i]
		m.Allocs += r.Allocs
		m.Frees += r.Frees
		m.Bytes += r.Bytes
		m.TotalAllocs += r.TotalAllocs
		m.TotalFrees += r.TotalFrees
		m.Untracked += r.Untracked
		m.Outstanding += r.Outstanding
		m.OutstandingBytes += r.OutstandingBytes
		m.Oldest = max(m.Oldest, r.Oldest)
	}
	return merged
}
