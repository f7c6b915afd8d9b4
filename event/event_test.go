package event

import (
	"strings"
	"testing"
)

func TestParseKinds(t *testing.T) {
	kinds, err := ParseKinds("kfree, kmalloc,kfree")
	if err != nil || len(kinds) != 2 || kinds[0] != KindKfree || kinds[1] != KindKmalloc {
		t.Fatalf("got %v, %v", kinds, err)
	}
	if all, _ := ParseKinds(""); len(all) != 4 {
		t.Fatalf("empty list selects %v", all)
	}
	if _, err := ParseKinds("kmalloc,kmem_cache_zap"); err == nil || !strings.Contains(err.Error(), "kmem_cache_zap") {
		t.Fatalf("unknown event accepted or not named: %v", err)
	}
}

func TestSeqTrackerGaps(t *testing.T) {
	var tr SeqTracker
	for _, seq := range []uint64{0, 1, 4, 5, 9} { // 2,3 and 6,7,8 missing
		tr.Observe(&Record{CPU: 1, Kind: KindKfree, Seq: seq})
	}
	tr.Observe(&Record{CPU: 1, Kind: KindKfree, Seq: 5}) // a duplicate
	if g := tr.Gaps(1, KindKfree, 12); g != 5+2 {        // 10, 11 lost after the last
		t.Fatalf("gaps %d, want 7", g)
	}
	if d := tr.Disorder(1, KindKfree); d != 1 {
		t.Fatalf("disorder %d, want 1", d)
	}
	if c := tr.Captured(1, KindKfree); c != 6 {
		t.Fatalf("captured %d, want 6", c)
	}
	if g := tr.Gaps(7, KindKmalloc, 3); g != 3 {
		t.Fatalf("a CPU never seen: gaps %d, want 3", g)
	}
}

func TestVerify(t *testing.T) {
	good := func() Stats {
		st := Stats{TruthChecked: true, PerCPU: []CPUStats{{CPU: 0}, {CPU: 1}}}
		st.PerCPU[0].Kinds[KindKmalloc] = Counts{Captured: 90, Lost: 10, Attempts: 100, SeqGaps: 10, Truth: 102}
		st.PerCPU[1].Kinds[KindKmalloc] = Counts{Captured: 50, Attempts: 50, Truth: 50}
		return st
	}
	st := good()
	if err := st.Verify(); err != nil {
		t.Fatalf("consistent stats rejected: %v", err)
	}
	if k := st.Kind(KindKmalloc); k.Missed != 2 || k.Lost != 12 {
		t.Fatalf("missed hits not counted as lost: %+v", k)
	}
	broken := map[string]func(*Stats){
		"captured": func(s *Stats) { s.PerCPU[1].Kinds[KindKmalloc].Captured = 49 },
		"gaps":     func(s *Stats) { s.PerCPU[0].Kinds[KindKmalloc].SeqGaps = 9 },
		"disorder": func(s *Stats) { s.PerCPU[0].Kinds[KindKmalloc].Disorder = 1 },
		"truth":    func(s *Stats) { s.PerCPU[0].Kinds[KindKmalloc].Truth = 99 },
	}
	for name, breakIt := range broken {
		st := good()
		breakIt(&st)
		if err := st.Verify(); err == nil {
			t.Errorf("%s: broken accounting passed", name)
		}
	}
	// Attempts above the truth: the error names the CPU where the
	// counter's own evidence (idle spells, repeated stamps) points.
	st = good()
	st.PerCPU[1].Kinds[KindKmalloc] = Counts{Captured: 50, Attempts: 50, Truth: 47, TruthIdleNs: 1500, StampRepeats: 3, StampsFell: 2}
	err := st.Verify()
	if err == nil || !strings.Contains(err.Error(), "cpu 1: 50 hits, 47 counted, the counter idle for 1500 ns, 3 repeated stamps, 2 below the one before") {
		t.Errorf("attempts above truth: %v; want the evidence of cpu 1 named", err)
	}
}

// TestHiddenHits: the hits the kernel skipped a tracepoint program for
// count as missed and as truth, and the accounting still balances.
func TestHiddenHits(t *testing.T) {
	st := Stats{TruthChecked: true, PerCPU: []CPUStats{{CPU: 0}}}
	st.PerCPU[0].Kinds[KindKfree] = Counts{Captured: 90, Lost: 10, Attempts: 100, SeqGaps: 10, Truth: 100}
	st.Hidden[KindKfree] = 7
	k := st.Kind(KindKfree)
	if k.Truth != 107 || k.Missed != 7 || k.Lost != 17 || k.Hidden != 7 {
		t.Errorf("kfree %+v: want truth 107, missed 7 (hidden), lost 17", k)
	}
	if err := st.Verify(); err != nil {
		t.Errorf("hidden hits broke the accounting: %v", err)
	}
}

// TestSeqTrackerRepeats: a record whose stamp repeats the record just
// before it on the same CPU and kind is kept as evidence, with its
// thread; a stamp after a gap (dropped records between) or a record
// without a stamp is not, and a mismatch's message names the threads.
func TestSeqTrackerRepeats(t *testing.T) {
	var tr SeqTracker
	obs := func(seq, truth uint64, pid uint32, flags uint16) {
		tr.Observe(&Record{CPU: 1, Kind: KindKfree, Seq: seq, Truth: truth, Pid: pid, TsNs: 1000 * seq, Flags: flags})
	}
	obs(0, 10, 5, FlagTruth)
	obs(1, 10, 7, FlagTruth) // repeats
	obs(2, 10, 7, FlagTruth) // repeats
	obs(4, 10, 9, FlagTruth) // after a gap: not evidence
	obs(5, 12, 9, FlagTruth)
	obs(6, 12, 9, 0)         // no stamp
	obs(7, 12, 9, FlagTruth) // the record before had none
	if ev := tr.Repeats(0, KindKfree); ev != nil {
		t.Fatalf("repeats on a CPU never seen: %+v", ev)
	}
	ev := tr.Repeats(1, KindKfree)
	if ev == nil || ev.Seen != 2 || ev.Tasks[7] != 2 || len(ev.Tasks) != 1 || ev.FirstNs != 1000 || ev.LastNs != 2000 {
		t.Fatalf("repeats %+v, want 2 by pid 7 at 1000 and 2000 ns", ev)
	}
	if s := ev.Samples[1]; s.TsNs != 2000 || s.Pid != 7 {
		t.Errorf("second sample %+v, want pid 7 at 2000 ns", s)
	}
	st := Stats{TruthChecked: true, PerCPU: []CPUStats{{CPU: 0}, {CPU: 1}}}
	st.PerCPU[1].Kinds[KindKfree] = Counts{Captured: 8, Attempts: 8, Truth: 6, StampRepeats: 2}
	st.PerCPU[1].Repeats[KindKfree] = ev
	ev.Comms = map[uint32]string{7: "kworker/1:2"}
	err := st.Verify()
	if err == nil || !strings.Contains(err.Error(), "2 repeated the stamp before, from 1000 to 2000 ns (0.001 ms), by pid 7 (kworker/1:2) ×2") {
		t.Errorf("mismatch: %v; want the threads of the repeated stamps named", err)
	}
}
