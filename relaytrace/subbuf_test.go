package relaytrace

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/slabbench/slabbench/event"
)

// fakeModule lays out one CPU's buffer exactly as slabrelay and relay do:
// relay_switch_subbuf's produce/start/refuse steps and the module's
// header, drop and overwrite accounting.
type fakeModule struct {
	buf                []byte
	size, n            int
	cpu                uint32
	overwrite          bool
	produced, consumed uint64
	off                int // offset in the current sub-buffer; -1: relay refused the start
	attempts           [event.NumKinds]uint64
	drops, overwritten [event.NumKinds]uint64
	overwrittenSubbufs uint64
}

func newFakeModule(size, n int, cpu uint32, overwrite bool) *fakeModule {
	f := &fakeModule{buf: make([]byte, size*n), size: size, n: n, cpu: cpu, overwrite: overwrite}
	f.start()
	return f
}

func (f *fakeModule) slot(seq uint64) []byte {
	i := int(seq%uint64(f.n)) * f.size
	return f.buf[i : i+f.size]
}

func (f *fakeModule) hdr(seq uint64) SubbufHeader {
	h, _ := DecodeHeader(f.slot(seq))
	return h
}

// start is the module's subbuf_start for sub-buffer f.produced.
func (f *fakeModule) start() bool {
	if f.produced-f.consumed >= uint64(f.n) {
		if !f.overwrite {
			f.off = -1
			return false
		}
		old := f.hdr(f.produced)
		for k := range f.overwritten {
			f.overwritten[k] += uint64(old.KindNRec[k])
		}
		f.overwrittenSubbufs++
		f.consumed++
	}
	h := SubbufHeader{Magic: SubbufMagic, CPU: f.cpu, Seq: f.produced, Overwritten: f.overwrittenSubbufs}
	h.Encode(f.slot(f.produced))
	f.off = HeaderSize
	return true
}

// finish closes the current sub-buffer (relay_switch_subbuf's produce).
func (f *fakeModule) finish() {
	h := f.hdr(f.produced)
	h.Commit = uint32(f.off)
	h.Encode(f.slot(f.produced))
	f.produced++
}

func (f *fakeModule) emit(k event.Kind) {
	seq := f.attempts[k]
	f.attempts[k]++
	if f.off < 0 || f.off+event.RecordSize > f.size {
		if f.off >= 0 {
			f.finish()
		}
		if !f.start() {
			f.drops[k]++
			return
		}
	}
	rec := event.Record{Seq: seq, CPU: f.cpu, Kind: k, TsNs: uint64(f.off), Ptr: 0xffff0000 + seq}
	rec.Encode(f.slot(f.produced)[f.off:])
	h := f.hdr(f.produced)
	h.NRec++
	h.KindNRec[k]++
	h.Encode(f.slot(f.produced))
	f.off += event.RecordSize
}

// flush is the module's flush IPI: close the open sub-buffer if it holds
// records.
func (f *fakeModule) flush() {
	if f.off <= HeaderSize {
		return
	}
	f.finish()
	f.start()
}

// consume is the module's "consumed" command; true means ESTALE.
func (f *fakeModule) consume(seq uint64) bool {
	if seq <= f.consumed {
		return true
	}
	f.consumed = seq
	return false
}

// reader reads one fake CPU with the code Capture uses on each CPU.
type reader struct {
	w       *Walker
	f       *fakeModule
	tracker event.SeqTracker
}

func (r *reader) step(rec *event.Record) (bool, error) {
	ok, err := readCPU(r.w, rec, func(next uint64) (bool, error) { return r.f.consume(next), nil })
	if ok {
		r.tracker.Observe(rec)
	}
	return ok, err
}

// stats accounts the fake CPU as Capture.Stats does the module's counters.
func (r *reader) stats(t *testing.T) event.Stats {
	t.Helper()
	cs := event.CPUStats{CPU: int(r.f.cpu)}
	for _, k := range event.AllKinds {
		km := kindModuleStats{attempts: r.f.attempts[k], drops: r.f.drops[k], overwritten: r.f.overwritten[k]}
		var err error
		if cs.Kinds[k], err = kindCounts(int(r.f.cpu), k, &r.tracker, r.w, km, false); err != nil {
			t.Fatal(err)
		}
	}
	return event.Stats{PerCPU: []event.CPUStats{cs}}
}

func TestWalkerSimple(t *testing.T) {
	// 3 records fit a sub-buffer of 64 + 3*80 + 16 bytes: 16 bytes padding.
	f := newFakeModule(HeaderSize+3*event.RecordSize+16, 4, 1, false)
	for i := 0; i < 7; i++ {
		f.emit(event.KindKmalloc)
	}
	w, err := NewWalker(f.buf, f.size, f.n, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{w: w, f: f}
	var rec event.Record
	for i := 0; i < 6; i++ {
		ok, err := r.step(&rec)
		if err != nil || !ok {
			t.Fatalf("record %d: ok %v err %v", i, ok, err)
		}
		if rec.Seq != uint64(i) || rec.Kind != event.KindKmalloc || rec.CPU != 1 {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}
	// The 7th record is in the open (partial) sub-buffer: not readable.
	if ok, err := r.step(&rec); ok || err != nil {
		t.Fatalf("open sub-buffer read: ok %v err %v", ok, err)
	}
	if f.hdr(1).Commit != uint32(HeaderSize+3*event.RecordSize) {
		t.Fatalf("commit %d", f.hdr(1).Commit)
	}
	f.flush()
	if ok, err := r.step(&rec); !ok || err != nil || rec.Seq != 6 {
		t.Fatalf("after flush: ok %v err %v rec %+v", ok, err, rec)
	}
	if ok, _ := r.step(&rec); ok {
		t.Fatal("record after the flushed ones")
	}
	st := r.stats(t)
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	if c := st.Kind(event.KindKmalloc); c.Captured != 7 || c.Lost != 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestWalkerNoOverwriteDrops(t *testing.T) {
	f := newFakeModule(HeaderSize+2*event.RecordSize, 3, 0, false)
	for i := 0; i < 20; i++ {
		f.emit(event.AllKinds[i%4])
	}
	// 3 sub-buffers of 2 records: 6 kept, 14 refused.
	w, _ := NewWalker(f.buf, f.size, f.n, 0)
	w.NoOverwrite()
	r := &reader{w: w, f: f}
	var rec event.Record
	n := 0
	for {
		ok, err := r.step(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		n++
	}
	// relay produced the third sub-buffer before refusing the fourth.
	if n != 6 {
		t.Fatalf("read %d records before flush, want 6", n)
	}
	// The fourth sub-buffer was refused, so a flush has nothing to close.
	f.flush()
	if ok, err := r.step(&rec); ok || err != nil {
		t.Fatalf("after the flush: record %v, err %v; want none", ok, err)
	}
	st := r.stats(t)
	if err := st.Verify(); err != nil {
		t.Fatal(err)
	}
	tot := st.Total()
	if tot.Captured != 6 || tot.Lost != 14 || tot.SeqGaps != 14 {
		t.Fatalf("totals %+v", tot)
	}
}

// TestWalkerRandom interleaves producer and reader at record granularity,
// in both modes, with a reader stalling now and then, and checks the
// exact accounting: captured + lost == attempts, gaps == lost.
func TestWalkerRandom(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		for seed := int64(0); seed < 50; seed++ {
			t.Run(fmt.Sprintf("overwrite=%v/seed=%d", overwrite, seed), func(t *testing.T) {
				rng := rand.New(rand.NewSource(seed))
				size := HeaderSize + (1+rng.Intn(5))*event.RecordSize + 8*rng.Intn(4)
				f := newFakeModule(size, 2+rng.Intn(4), 3, overwrite)
				w, err := NewWalker(f.buf, f.size, f.n, 3)
				if err != nil {
					t.Fatal(err)
				}
				if !overwrite {
					w.NoOverwrite() // as Capture reads that mode
				}
				r := &reader{w: w, f: f}
				var rec event.Record
				for i := 0; i < 3000; i++ {
					if rng.Intn(3) > 0 {
						for j := rng.Intn(8); j >= 0; j-- {
							f.emit(event.AllKinds[rng.Intn(4)])
						}
					} else {
						for j := rng.Intn(6); j >= 0; j-- {
							if _, err := r.step(&rec); err != nil {
								t.Fatal(err)
							}
						}
					}
					if rng.Intn(50) == 0 {
						f.flush()
					}
				}
				f.flush()
				for {
					ok, err := r.step(&rec)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
				}
				st := r.stats(t)
				if err := st.Verify(); err != nil {
					t.Fatal(err)
				}
				tot := st.Total()
				if tot.Captured == 0 || tot.Lost == 0 {
					t.Fatalf("test did not exercise loss: %+v", tot)
				}
				if overwrite && w.LostSubbufs() != f.overwrittenSubbufs {
					t.Fatalf("walker lost %d sub-buffers, module overwrote %d", w.LostSubbufs(), f.overwrittenSubbufs)
				}
			})
		}
	}
}

func TestWalkerCorrupt(t *testing.T) {
	mk := func(mut func(h *SubbufHeader, b []byte)) error {
		f := newFakeModule(HeaderSize+2*event.RecordSize, 2, 0, false)
		f.emit(event.KindKfree)
		f.emit(event.KindKfree)
		f.flush()
		h := f.hdr(0)
		mut(&h, f.slot(0))
		w, _ := NewWalker(f.buf, f.size, f.n, 0)
		var rec event.Record
		for i := 0; i < 10; i++ {
			st, err := w.Step(&rec)
			if err != nil {
				return err
			}
			if st == StepEmpty {
				return nil
			}
		}
		return nil
	}
	if err := mk(func(*SubbufHeader, []byte) {}); err != nil {
		t.Fatalf("intact buffer: %v", err)
	}
	cases := map[string]func(h *SubbufHeader, b []byte){
		"magic":     func(h *SubbufHeader, b []byte) { h.Magic = 1; h.Encode(b) },
		"cpu":       func(h *SubbufHeader, b []byte) { h.CPU = 7; h.Encode(b) },
		"commit":    func(h *SubbufHeader, b []byte) { h.Commit = 1 << 20; h.Encode(b) },
		"misalign":  func(h *SubbufHeader, b []byte) { h.Commit -= 8; h.Encode(b) },
		"nrec":      func(h *SubbufHeader, b []byte) { h.NRec = 1; h.Encode(b) },
		"kinds":     func(h *SubbufHeader, b []byte) { h.KindNRec[1] = 2; h.Encode(b) },
		"reckind":   func(h *SubbufHeader, b []byte) { b[HeaderSize+76] = 9 },
		"recordcpu": func(h *SubbufHeader, b []byte) { b[HeaderSize+72] = 5 },
	}
	for name, mut := range cases {
		err := mk(mut)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzWalker(f *testing.F) {
	fm := newFakeModule(HeaderSize+2*event.RecordSize, 2, 0, false)
	for i := 0; i < 5; i++ {
		fm.emit(event.KindKmalloc)
	}
	f.Add(fm.buf)
	f.Add(make([]byte, 2*MinSubbufSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		// 8-byte aligned copy, as a mapping is
		buf := make([]uint64, (len(b)+7)/8+1)
		mem := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*8)[:len(b)]
		copy(mem, b)
		size := HeaderSize + 2*event.RecordSize
		w, err := NewWalker(mem, size, 2, 0)
		if err != nil {
			return
		}
		var rec event.Record
		for i := 0; i < 20; i++ {
			st, err := w.Step(&rec)
			if err != nil || st == StepEmpty {
				return
			}
		}
	})
}

// TestHeaderMatchesC compiles a program printing the C layout of struct
// slabrelay_subbuf_hdr and the limits, and compares them with the Go
// mirror.
func TestHeaderMatchesC(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler: ", err)
	}
	dir := t.TempDir()
	src := `#include <stdio.h>
#include <stddef.h>
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
#include "slabrelay.h"
#define F(m) printf(#m " %zu\n", offsetof(struct slabrelay_subbuf_hdr, m))
int main(void) {
	F(magic); F(cpu); F(seq); F(commit); F(nrec); F(kind_nrec); F(prev_padding); F(ts_ns); F(overwritten);
	printf("size %zu\n", sizeof(struct slabrelay_subbuf_hdr));
	printf("SLABRELAY_HDR_SIZE %d\n", SLABRELAY_HDR_SIZE);
	printf("magic %u\n", SLABRELAY_SUBBUF_MAGIC);
	printf("kinds %d\n", SLAB_EVENT_KIND_MAX);
	printf("min_subbuf %d\n", SLABRELAY_MIN_SUBBUF_SIZE);
	printf("min_subbufs %d max_subbufs %d max_cpu_bytes %u\n", SLABRELAY_MIN_SUBBUFS, SLABRELAY_MAX_SUBBUFS, SLABRELAY_MAX_CPU_BYTES);
	return 0;
}
`
	if err := os.WriteFile(filepath.Join(dir, "l.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	inc, _ := filepath.Abs("../kmod/include")
	out, err := exec.Command(cc, "-I", inc, "-o", filepath.Join(dir, "l"), filepath.Join(dir, "l.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(dir, "l")).Output()
	if err != nil {
		t.Fatal(err)
	}
	var h SubbufHeader
	want := fmt.Sprintf(`magic %d
cpu %d
seq %d
commit %d
nrec %d
kind_nrec %d
prev_padding %d
ts_ns %d
overwritten %d
size %d
SLABRELAY_HDR_SIZE %d
magic %d
kinds %d
min_subbuf %d
min_subbufs %d max_subbufs %d max_cpu_bytes %d
`, unsafe.Offsetof(h.Magic), unsafe.Offsetof(h.CPU), unsafe.Offsetof(h.Seq), unsafe.Offsetof(h.Commit),
		unsafe.Offsetof(h.NRec), unsafe.Offsetof(h.KindNRec), unsafe.Offsetof(h.PrevPadding),
		unsafe.Offsetof(h.TsNs), unsafe.Offsetof(h.Overwritten), unsafe.Sizeof(h), HeaderSize,
		SubbufMagic, event.NumKinds, MinSubbufSize, MinSubbufs, MaxSubbufs, MaxCPUBytes)
	if string(out) != want {
		t.Fatalf("C layout:\n%s\nGo layout:\n%s", out, want)
	}
	// DecodeHeader must read the offsets above: encode and compare bytes.
	h = SubbufHeader{Magic: 1, CPU: 2, Seq: 3, Commit: 4, NRec: 5, KindNRec: [5]uint32{6, 7, 8, 9, 10}, PrevPadding: 11, TsNs: 12, Overwritten: 13}
	b := make([]byte, HeaderSize)
	h.Encode(b)
	if raw := unsafe.Slice((*byte)(unsafe.Pointer(&h)), HeaderSize); !bytes.Equal(raw, b) {
		t.Fatalf("Encode does not match the in-memory layout:\n%x\n%x", raw, b)
	}
	if d, _ := DecodeHeader(b); d != h {
		t.Fatalf("DecodeHeader: %+v", d)
	}
}

func TestParseStats(t *testing.T) {
	in := `slabrelay 1 subbuf_size 4096 n_subbufs 4 overwrite 1 events 30 probes 0
cpu 0 produced 4 consumed 1 overwritten_subbufs 2 max_backlog 4 probe_ns 900 probe_runs 9
kind 0 1 attempts 2063 drops 5 truth_first 1 truth_last 2063 truth_errors 0 overwritten 7 nested 3 first_emit 2 stacks_taken 2000 stacks_full 40 stack_collisions 20 stacks_failed 3
kind 0 2 attempts 1 drops 0 truth_first 3 truth_last 3 truth_errors 0 overwritten 0
`
	ms, err := parseStats([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if ms.subbufSize != 4096 || ms.nSubbufs != 4 || !ms.overwrite || len(ms.cpus) != 1 {
		t.Fatalf("%+v", ms)
	}
	c := ms.cpus[0]
	if c.produced != 4 || c.consumed != 1 || c.overwrittenSubbufs != 2 || c.backlog != 4 || c.probeNs != 900 || c.probeRuns != 9 ||
		c.kinds[1] != (kindModuleStats{attempts: 2063, drops: 5, truthFirst: 1, truthLast: 2063, overwritten: 7, nested: 3, firstEmit: 2,
			stacksTaken: 2000, stacksFull: 40, stackCollisions: 20, stacksFailed: 3}) || c.kinds[2].truthFirst != 3 {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{"slabrelay 2\n", "kind 0 1 attempts 1\n", "cpu x\n", "cpu 0 produced\n", "what 1\n",
		"slabrelay 1\ncpu 0\nkind 1 1 attempts 1\n", "slabrelay 1\ncpu 0\nkind 0 9 attempts 1\n"} {
		if _, err := parseStats([]byte(bad)); err == nil || !strings.Contains(err.Error(), "slabrelay stats") {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}

// TestParseStacks: the module's stacks file gives each stack id its frames
// in order; a line without a frame or with a bad number is an error
// naming the line.
func TestParseStacks(t *testing.T) {
	stacks, err := parseStacks([]byte("0 ffffffff8132bccb ffffffff81369a43\n1f ffffffff81369ead\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stacks) != 2 || !slices.Equal(stacks[0], []uint64{0xffffffff8132bccb, 0xffffffff81369a43}) || !slices.Equal(stacks[0x1f], []uint64{0xffffffff81369ead}) {
		t.Fatalf("%x", stacks)
	}
	for _, bad := range []string{"7\n", "x ffff\n", "1 fffz\n"} {
		if _, err := parseStacks([]byte(bad)); err == nil || !strings.Contains(err.Error(), "stacks line 1") {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}

func TestModuleParams(t *testing.T) {
	cfg := Config{SubbufSize: 4096, NumSubbufs: 4, Overwrite: true, Kinds: []event.Kind{event.KindKmalloc, event.KindKfree}}
	got := moduleParams(&cfg, tracepointIDs{11, 12, 0, 0})
	if want := "subbuf_size=4096 n_subbufs=4 overwrite=1 events=6 truth_ids=11,12,0,0"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	cfg.StackDepth, cfg.StackEntries = 8, 100
	if got := moduleParams(&cfg, tracepointIDs{}); !strings.HasSuffix(got, " stack_depth=8 stack_entries=100") {
		t.Errorf("with stacks: %q", got)
	}
	cfg.Part = PartFill
	if got := moduleParams(&cfg, tracepointIDs{}); !strings.Contains(got, " part=2") {
		t.Errorf("part=2: %q", got)
	}
	for _, bad := range []Config{{Part: PartFill + 1}, {Part: PartFloor, Truth: true}, {Part: PartFloor, Empty: true}} {
		if _, err := Open(bad); err == nil || !strings.Contains(err.Error(), "relay probe part") {
			t.Errorf("Open(%+v): %v, want the part refused before loading", bad, err)
		}
	}
	for _, c := range [][2]int{{0, 4}, {100, 4}, {4100, 4}, {4096, 1}, {4096, MaxSubbufs + 1}, {32 << 20, 4}} {
		if err := CheckSizes(c[0], c[1]); err == nil {
			t.Errorf("CheckSizes(%d, %d) accepted", c[0], c[1])
		}
	}
	if err := CheckSizes(MinSubbufSize, MinSubbufs); err != nil {
		t.Error(err)
	}
}

// TestKindCountsTruth: the truth window is last - first + 1, and a hit
// whose counter could not be read fails the accounting instead of
// shrinking the window silently.
func TestKindCountsTruth(t *testing.T) {
	w, err := NewWalker(make([]byte, 2*MinSubbufSize), MinSubbufSize, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tr event.SeqTracker
	km := kindModuleStats{attempts: 10, drops: 10, truthFirst: 100, truthLast: 111}
	c, err := kindCounts(0, event.KindKfree, &tr, w, km, true)
	if err != nil || c.Truth != 12 || c.Lost != 10 {
		t.Fatalf("counts %+v, err %v; want truth 12, lost 10", c, err)
	}
	km.truthErrors = 1
	if _, err := kindCounts(0, event.KindKfree, &tr, w, km, true); err == nil || !strings.Contains(err.Error(), "truth counter") {
		t.Fatalf("truth errors: got %v", err)
	}
	if _, err := kindCounts(0, event.KindKfree, &tr, w, km, false); err != nil {
		t.Fatalf("truth off: %v", err)
	}
}
