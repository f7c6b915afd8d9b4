// Package kleak follows slab allocations by pointer, as the relay design
// slabbench comes from meant to ("kleak"): every allocation event is
// remembered until its free arrives, so what stays outstanding, and where
// it was allocated, can be shown while a capture runs (`slabbench top`).
//
// The table of outstanding allocations is bounded: past the bound, new
// allocations are counted as untracked, never dropped silently. Frees of
// pointers the table does not hold (allocated before the window, by a
// process the filter leaves out, or untracked) are counted apart and never
// make a count negative. What the capture lost is counted from the
// records' own sequence numbers and truth stamps as they arrive, so every
// interval says how far its outstanding figures can be off.
package kleak

import (
	"math"
	"sync"

	"github.com/slabbench/slabbench/event"
)

// Config of a Tracker.
type Config struct {
	// MaxTracked bounds the outstanding allocations held in the table.
	MaxTracked int
	// TGID, if not 0, tracks only the allocations of that process; frees
	// are matched by pointer whoever makes them.
	TGID uint32
	// Include, if set, tracks only the allocations of the processes it
	// includes (a program's process tree), instead of TGID's.
	Include func(tgid uint32) bool
}

// DefaultMaxTracked is the table bound `slabbench top` uses unless told
// otherwise: about 64 MB of Go heap.
const DefaultMaxTracked = 1 << 20

// Family groups the kinds by allocator: kmalloc (kmalloc, kfree) and
// kmem_cache (kmem_cache_alloc, kmem_cache_free).
type Family uint8

// The two families.
const (
	FamilyKmalloc Family = iota
	FamilyKmemCache
	numFamilies
)

func (f Family) String() string {
	if f == FamilyKmalloc {
		return "kmalloc"
	}
	return "kmem_cache"
}

func familyOf(k event.Kind) Family {
	if k == event.KindKmalloc || k == event.KindKfree {
		return FamilyKmalloc
	}
	return FamilyKmemCache
}

// zeroOrNull is ZERO_OR_NULL_PTR: kfree(NULL) and kfree(ZERO_SIZE_PTR)
// are traced, and free nothing.
func zeroOrNull(ptr uint64) bool { return ptr <= 16 }

// siteKey is where an allocation was made: its call site and, when the
// capture takes stacks, its kernel stack (an id of the capture's stack
// map; hasStack false when none was taken).
type siteKey struct {
	addr     uint64
	stack    uint32
	hasStack bool
}

// live is one outstanding allocation.
type live struct {
	site  siteKey
	bytes uint64
	ts    uint64 // CLOCK_MONOTONIC ns of the allocation
	fam   Family
}

// counts are allocation and free counts, per interval or since the start.
type counts struct {
	allocs, frees, bytes uint64
}

func (c *counts) add(o counts) {
	c.allocs += o.allocs
	c.frees += o.frees
	c.bytes += o.bytes
}

// site is one allocation call site's counts. Frees count where the freed
// allocation was made, not where the free was called.
type site struct {
	fam       Family
	interval  counts
	total     counts
	untracked uint64 // allocations not put in the full table
}

// stream is the last record seen of one CPU and kind.
type stream struct {
	seq, truth uint64
	seen       bool
	truthSeen  bool
}

// Tracker follows allocations. Observe is called by the capture's
// consumer; Snapshot by the view, from another goroutine.
type Tracker struct {
	mu      sync.Mutex
	cfg     Config
	table   map[uint64]live
	sites   map[siteKey]*site
	fam     [numFamilies]counts // in the interval
	streams []stream            // by cpu*NumKinds + kind
	acct    Accounting
	since   uint64 // allocations stamped before this are not followed (Begin)
}

// New returns an empty tracker; cfg.MaxTracked <= 0 means
// DefaultMaxTracked.
func New(cfg Config) *Tracker {
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	return &Tracker{cfg: cfg, table: map[uint64]live{}, sites: map[siteKey]*site{}, since: math.MaxUint64}
}

// Begin opens the window at nowNs (CLOCK_MONOTONIC): allocations stamped
// earlier, such as the capture's own set-up, are not followed, and their
// frees count as unmatched. Until Begin, nothing is followed.
func (t *Tracker) Begin(nowNs uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since = nowNs
}

// Observe accounts one record.
func (t *Tracker) Observe(rec *event.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.account(rec)
	if !rec.Kind.Valid() {
		return
	}
	if rec.Kind.IsAlloc() {
		t.alloc(rec)
	} else {
		t.free(rec)
	}
}

// tracks says whether the allocations of process tgid are followed.
func (t *Tracker) tracks(tgid uint32) bool {
	switch {
	case t.cfg.Include != nil:
		return t.cfg.Include(tgid)
	case t.cfg.TGID != 0:
		return tgid == t.cfg.TGID
	}
	return true
}

func (t *Tracker) alloc(rec *event.Record) {
	if rec.TsNs < t.since || !t.tracks(rec.Tgid) {
		return
	}
	fam := familyOf(rec.Kind)
	key := siteKey{addr: rec.CallSite}
	if rec.Flags&event.FlagStack != 0 {
		key.stack, key.hasStack = rec.StackID, true
	}
	s := t.sites[key]
	if s == nil {
		s = &site{fam: fam}
		t.sites[key] = s
	}
	s.interval.allocs++
	s.interval.bytes += rec.BytesAlloc
	t.fam[fam].allocs++
	t.fam[fam].bytes += rec.BytesAlloc
	if zeroOrNull(rec.Ptr) {
		t.acct.FailedAllocs++
		return
	}
	if old, ok := t.table[rec.Ptr]; ok && old.ts > rec.TsNs {
		// A later allocation of this pointer was read first: this one
		// was freed before it.
		t.acct.Reordered++
		return
	} else if ok {
		// The pointer is handed out again: its free never reached us.
		t.acct.ReusedWithoutFree++
	} else if len(t.table) >= t.cfg.MaxTracked {
		s.untracked++
		t.acct.Untracked++
		return
	}
	t.table[rec.Ptr] = live{site: key, bytes: rec.BytesAlloc, ts: rec.TsNs, fam: fam}
}

func (t *Tracker) free(rec *event.Record) {
	if zeroOrNull(rec.Ptr) {
		t.acct.NullFrees++
		return
	}
	a, ok := t.table[rec.Ptr]
	switch {
	case !ok:
		t.acct.UnmatchedFrees++
		return
	case a.ts > rec.TsNs:
		// The free of an earlier allocation of this pointer, read after
		// the later allocation: it leaves that one outstanding.
		t.acct.Reordered++
		return
	}
	delete(t.table, rec.Ptr)
	t.sites[a.site].interval.frees++
	t.fam[a.fam].frees++
}

// account counts the record and what its sequence number and truth stamp
// say was lost since the previous record of its CPU and kind: skipped
// sequence numbers were dropped (buffer full); truth hits beyond the
// sequence numbers were missed (probe not run).
func (t *Tracker) account(rec *event.Record) {
	t.acct.Captured++
	k := int(rec.Kind)
	if !rec.Kind.Valid() {
		return
	}
	i := int(rec.CPU)*int(event.NumKinds) + k
	if i >= len(t.streams) {
		t.streams = append(t.streams, make([]stream, i+1-len(t.streams))...)
	}
	st := &t.streams[i]
	hasTruth := rec.Flags&event.FlagTruth != 0
	if st.seen && rec.Seq > st.seq {
		dropped := rec.Seq - st.seq - 1
		var missed uint64
		if hasTruth && st.truthSeen && rec.Truth > st.truth && rec.Truth-st.truth > rec.Seq-st.seq {
			missed = rec.Truth - st.truth - (rec.Seq - st.seq)
		}
		t.acct.Dropped += dropped
		t.acct.Missed += missed
		if !rec.Kind.IsAlloc() {
			t.acct.DroppedFrees += dropped
			t.acct.MissedFrees += missed
		}
	}
	if !st.seen || rec.Seq > st.seq {
		st.seq, st.seen = rec.Seq, true
		if hasTruth {
			st.truth, st.truthSeen = rec.Truth, true
		}
	}
}

// StackIDs returns the stack ids of the allocations followed so far
// (capture --stacks), each once.
func (t *Tracker) StackIDs() []uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ids []uint32
	seen := map[uint32]bool{}
	for k := range t.sites {
		if k.hasStack && !seen[k.stack] {
			seen[k.stack] = true
			ids = append(ids, k.stack)
		}
	}
	return ids
}
