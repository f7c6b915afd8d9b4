package kleak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slabbench/slabbench/event"
)

// stream of records as one CPU's probe would stamp them.
type recorder struct {
	seq   [event.NumKinds]uint64
	truth [event.NumKinds]uint64
	ts    uint64
}

// next returns the next record of kind k; skip drops that many attempts
// before it (seq and truth advance), miss hits the probe never ran for
// (truth advances only).
func (r *recorder) next(k event.Kind, site, ptr, bytes uint64, tgid uint32, skip, miss uint64) *event.Record {
	r.seq[k] += skip
	r.truth[k] += skip + miss
	r.ts += 1000
	rec := &event.Record{TsNs: r.ts, Seq: r.seq[k], Truth: r.truth[k], CallSite: site, Ptr: ptr,
		BytesAlloc: bytes, Kind: k, Tgid: tgid, Flags: event.FlagTruth}
	r.seq[k]++
	r.truth[k]++
	return rec
}

func siteOf(t *testing.T, s Snapshot, addr uint64) Site {
	t.Helper()
	for _, row := range s.Sites {
		if row.Address == addr {
			return row
		}
	}
	return Site{}
}

func TestOutstandingByPointer(t *testing.T) {
	tr := New(Config{})
	tr.Begin(0)
	var r recorder
	const siteA, siteB = 0xa000, 0xb000
	for i := range uint64(10) {
		tr.Observe(r.next(event.KindKmemCacheAlloc, siteA, 0x1000+i*64, 64, 1, 0, 0))
	}
	tr.Observe(r.next(event.KindKmalloc, siteB, 0x9000, 512, 1, 0, 0))
	// Frees are counted where the allocation was made, whoever frees.
	for i := range uint64(4) {
		tr.Observe(r.next(event.KindKmemCacheFree, 0xf000, 0x1000+i*64, 0, 2, 0, 0))
	}
	tr.Observe(r.next(event.KindKfree, 0xf000, 0x7777, 0, 1, 0, 0)) // allocated before the window
	tr.Observe(r.next(event.KindKfree, 0xf000, 0, 0, 1, 0, 0))      // kfree(NULL)
	s := tr.Snapshot(r.ts, 0)
	a := siteOf(t, s, siteA)
	if a.Allocs != 10 || a.Frees != 4 || a.Outstanding != 6 || a.OutstandingBytes != 6*64 || a.Bytes != 640 || a.Family != FamilyKmemCache {
		t.Errorf("site A = %+v, want 10 allocs, 4 frees, 6 outstanding (384 bytes)", a)
	}
	if b := siteOf(t, s, siteB); b.Outstanding != 1 || b.Family != FamilyKmalloc {
		t.Errorf("site B = %+v, want 1 kmalloc outstanding", b)
	}
	if got := siteOf(t, s, 0xf000); got != (Site{}) {
		t.Errorf("the free site has a row %+v: frees belong to the allocating site", got)
	}
	if s.Accounting.UnmatchedFrees != 1 || s.Accounting.NullFrees != 1 || s.Accounting.Captured != 17 {
		t.Errorf("accounting %+v, want 1 unmatched free, 1 null free, 17 captured", s.Accounting)
	}
	if f := s.Families[FamilyKmemCache]; f.Outstanding != 6 || f.Allocs != 10 || f.Frees != 4 {
		t.Errorf("kmem_cache family %+v", f)
	}
	// The interval counts start again; outstanding stays.
	s = tr.Snapshot(r.ts, 0)
	if a := siteOf(t, s, siteA); a.Allocs != 0 || a.Outstanding != 6 || a.TotalAllocs != 10 || a.TotalFrees != 4 {
		t.Errorf("second interval, site A = %+v", a)
	}
}

func TestBeginFilterAndAge(t *testing.T) {
	tr := New(Config{TGID: 7})
	var r recorder
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x100, 8, 7, 0, 0)) // before Begin
	tr.Begin(r.ts + 1)
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x200, 8, 7, 0, 0))
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x300, 8, 8, 0, 0)) // another process
	tr.Observe(r.next(event.KindKfree, 0xf, 0x100, 0, 7, 0, 0))
	r.ts += uint64(time.Second)
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x400, 8, 7, 0, 0))
	s := tr.Snapshot(r.ts, 500*time.Millisecond)
	a := siteOf(t, s, 0xa)
	if a.Allocs != 2 || a.Outstanding != 1 || a.Oldest < time.Second {
		t.Errorf("site = %+v, want 2 allocs of pid 7 after Begin, 1 of them older than 500ms", a)
	}
	if s.Accounting.UnmatchedFrees != 1 || s.Tracked != 2 {
		t.Errorf("accounting %+v tracked %d, want the free of the pre-window allocation unmatched, 2 tracked", s.Accounting, s.Tracked)
	}
}

// TestIncludeFollowsASet: with Include, the allocations of the processes
// it includes are tracked, whatever TGID says; frees match from anyone.
func TestIncludeFollowsASet(t *testing.T) {
	tree := map[uint32]bool{7: true, 9: true}
	tr := New(Config{TGID: 8, Include: func(tgid uint32) bool { return tree[tgid] }})
	var r recorder
	tr.Begin(r.ts + 1)
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x100, 8, 7, 0, 0))
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x200, 8, 8, 0, 0)) // not in the set
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x300, 8, 9, 0, 0))
	tr.Observe(r.next(event.KindKfree, 0xf, 0x300, 0, 1, 0, 0)) // freed by another process
	a := siteOf(t, tr.Snapshot(r.ts, 0), 0xa)
	if a.Allocs != 2 || a.Outstanding != 1 {
		t.Errorf("site = %+v, want the 2 allocations of processes 7 and 9, 1 still outstanding", a)
	}
}

func TestBoundAndReuse(t *testing.T) {
	tr := New(Config{MaxTracked: 3})
	tr.Begin(0)
	var r recorder
	for i := range uint64(5) {
		tr.Observe(r.next(event.KindKmemCacheAlloc, 0xa, 0x100+i, 8, 1, 0, 0))
	}
	tr.Observe(r.next(event.KindKmemCacheAlloc, 0xb, 0x100, 8, 1, 0, 0)) // 0x100 again, no free seen
	s := tr.Snapshot(r.ts, 0)
	if s.Accounting.Untracked != 2 || s.Tracked != 3 || s.Accounting.ReusedWithoutFree != 1 {
		t.Errorf("accounting %+v, tracked %d: want 2 untracked past the bound of 3, 1 reuse", s.Accounting, s.Tracked)
	}
	if a, b := siteOf(t, s, 0xa), siteOf(t, s, 0xb); a.Outstanding != 2 || a.Untracked != 2 || b.Outstanding != 1 {
		t.Errorf("sites a %+v b %+v: the reused pointer moves to b", a, b)
	}
	if s.Accounting.UnderstatedBy() != 2 {
		t.Errorf("understated by %d, want the 2 untracked", s.Accounting.UnderstatedBy())
	}
	// Frees never make a count negative.
	for range 3 {
		tr.Observe(r.next(event.KindKmemCacheFree, 0xf, 0x104, 0, 1, 0, 0))
	}
	if a := siteOf(t, tr.Snapshot(r.ts, 0), 0xa); a.Outstanding != 2 {
		t.Errorf("frees of an untracked pointer changed site a: %+v", a)
	}
}

// TestReadOutOfTimeOrder: records of different CPUs are not read in time
// order, so a pointer's free and its next allocation can arrive swapped;
// the stamps place them.
func TestReadOutOfTimeOrder(t *testing.T) {
	tr := New(Config{})
	tr.Begin(0)
	at := func(k event.Kind, ptr, ts uint64) *event.Record {
		return &event.Record{TsNs: ts, Kind: k, CallSite: 0xa, Ptr: ptr, BytesAlloc: 8}
	}
	// 0x100 freed at 20 (an allocation before the window), allocated
	// again at 30; the allocation is read first.
	tr.Observe(at(event.KindKmalloc, 0x100, 30))
	tr.Observe(at(event.KindKfree, 0x100, 20))
	// 0x200 allocated at 10 and freed at 40, then allocated again at 50;
	// the allocation at 50 is read before the one at 10 and the free.
	tr.Observe(at(event.KindKmalloc, 0x200, 50))
	tr.Observe(at(event.KindKmalloc, 0x200, 10))
	tr.Observe(at(event.KindKfree, 0x200, 40))
	s := tr.Snapshot(60, 0)
	if a := siteOf(t, s, 0xa); a.Outstanding != 2 || a.Allocs != 3 {
		t.Errorf("site = %+v, want 3 allocations, the 2 latest outstanding", a)
	}
	if s.Accounting.Reordered != 3 || s.Accounting.ReusedWithoutFree != 0 {
		t.Errorf("accounting %+v, want 3 reordered records (the free at 20, the allocation at 10 and its free), no reuse", s.Accounting)
	}
}

func TestLossFromSequenceAndTruth(t *testing.T) {
	tr := New(Config{})
	tr.Begin(0)
	var r, r1 recorder
	tr.Observe(r.next(event.KindKfree, 0xf, 0x10000, 0, 1, 0, 0))
	tr.Observe(r.next(event.KindKfree, 0xf, 0x10040, 0, 1, 3, 0))   // 3 dropped
	tr.Observe(r.next(event.KindKfree, 0xf, 0x10080, 0, 1, 0, 2))   // 2 missed
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x20000, 8, 1, 0, 0)) // first of its kind: nothing known before
	tr.Observe(r.next(event.KindKmalloc, 0xa, 0x20040, 8, 1, 4, 1)) // 4 dropped, 1 missed
	rec := r1.next(event.KindKfree, 0xf, 0x10100, 0, 1, 0, 0)       // another CPU's stream
	rec.CPU = 1
	tr.Observe(rec)
	a := tr.Snapshot(r.ts, 0).Accounting
	if a.Dropped != 7 || a.Missed != 3 || a.DroppedFrees != 3 || a.MissedFrees != 2 || a.OverstatedBy() != 5 {
		t.Errorf("accounting %+v, want 7 dropped (3 frees), 3 missed (2 frees)", a)
	}
	if a.UnderstatedBy() != 5 {
		t.Errorf("understated by %d, want the 5 lost allocations", a.UnderstatedBy())
	}
	// The kernel's recursion count raises the bounds where it exceeds
	// what the truth stamps showed (tracepoint attach), not otherwise.
	var m [event.NumKinds]uint64
	m[event.KindKfree], m[event.KindKmalloc] = 1, 1
	tr.SetProbeMisses(m)
	if a := tr.Snapshot(r.ts, 0).Accounting; a.OverstatedBy() != 5 || a.UnderstatedBy() != 5 {
		t.Errorf("fewer probe misses than missed: bounds +%d -%d, want +5 -5", a.OverstatedBy(), a.UnderstatedBy())
	}
	m[event.KindKmemCacheFree], m[event.KindKmemCacheAlloc] = 9, 3
	tr.SetProbeMisses(m)
	if a := tr.Snapshot(r.ts, 0).Accounting; a.OverstatedBy() != 3+10 || a.UnderstatedBy() != 4+4 {
		t.Errorf("more probe misses than missed: bounds +%d -%d, want +13 -8", a.OverstatedBy(), a.UnderstatedBy())
	}
	var dropped, missed [event.NumKinds]uint64
	dropped[event.KindKfree], dropped[event.KindKmalloc] = 5, 5       // 10, 5 of them frees
	missed[event.KindKmemCacheFree], missed[event.KindKmalloc] = 2, 1 // 3, 2 of them frees
	tr.Finalize(dropped, missed)
	tr.SetProbeMisses([event.NumKinds]uint64{})
	if a := tr.Snapshot(r.ts, 0).Accounting; !a.Final || a.Dropped != 10 || a.Missed != 3 || a.OverstatedBy() != 7 {
		t.Errorf("after Finalize %+v, want final and the capture's counts", a)
	}
}

func TestSymbols(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kallsyms")
	os.WriteFile(path, []byte(strings.Join([]string{
		"ffffffff81000000 T _stext",
		"ffffffff81000100 t helper",
		"ffffffff81000200 D some_data",
		"ffffffffc0000000 t mod_fn\t[slabrelay]",
		"0000000000000000 A fixed_percpu_data",
	}, "\n")+"\n"), 0o644)
	s, err := LoadSymbols(path)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff81000105: "helper+0x5",
		0xffffffff81000250: "helper+0x150", // data symbols are not functions
		0xffffffffc0000010: "mod_fn+0x10 [slabrelay]",
		0x1234:             "0x1234",
	} {
		if got := s.Resolve(addr); got != want {
			t.Errorf("Resolve(%#x) = %q, want %q", addr, got, want)
		}
	}
	os.WriteFile(path, []byte("0000000000000000 T _stext\n"), 0o644)
	if _, err := LoadSymbols(path); err == nil || !strings.Contains(err.Error(), "kptr_restrict") {
		t.Errorf("hidden addresses: error %v, want one naming kptr_restrict", err)
	}
}

// TestStacksAreRowsOfTheirSite: allocations at one call site through two
// stacks are two rows, a free counts against its allocation's stack, and
// BySite merges them back into the call site's row.
func TestStacksAreRowsOfTheirSite(t *testing.T) {
	tr := New(Config{})
	var r recorder
	tr.Begin(r.ts + 1)
	for i, stack := range []uint32{5, 5, 9} {
		rec := r.next(event.KindKmalloc, 0xa, uint64(0x100*(i+1)), 8, 7, 0, 0)
		rec.Flags |= event.FlagStack
		rec.StackID = stack
		tr.Observe(rec)
	}
	tr.Observe(r.next(event.KindKfree, 0xf, 0x300, 0, 7, 0, 0)) // the stack-9 one
	s := tr.Snapshot(r.ts, 0)
	byStack := map[uint32]Site{}
	for _, row := range s.Sites {
		byStack[row.Stack] = row
	}
	if len(s.Sites) != 2 || byStack[5].Outstanding != 2 || byStack[9].Outstanding != 0 || byStack[9].Frees != 1 {
		t.Errorf("rows %+v: want stack 5 with 2 outstanding, stack 9 with its 1 free", s.Sites)
	}
	if merged := BySite(s.Sites); len(merged) != 1 || merged[0].Outstanding != 2 || merged[0].Allocs != 3 || merged[0].HasStack {
		t.Errorf("BySite: %+v, want one row of 3 allocations, 2 outstanding", merged)
	}
	if ids := tr.StackIDs(); len(ids) != 2 {
		t.Errorf("StackIDs %v, want 5 and 9", ids)
	}
}
