package relaytrace

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
	"github.com/slabbench/slabbench/workloads"
)

// These tests load the module: they run where the kernel loads modules
// (the VM: slabbench vm --exec relaytrace.test) and skip elsewhere.
func needModule(t *testing.T) {
	t.Helper()
	if err := Available(""); err != nil {
		t.Skip("relay path unavailable: ", err)
	}
	if Loaded() {
		t.Fatal("slabrelay is already loaded: rmmod slabrelay")
	}
}

// openClose drives kmalloc/kfree and kmem_cache_alloc/free (struct file)
// until ctx is done or ops opens are done; it returns the opens.
func openClose(ctx context.Context, ops int) int {
	n := 0
	for ; ops <= 0 || n < ops; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			break
		}
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
	}
	return n
}

// readUntil reads records until the deadline passes and none is
// pending; it returns how many it read.
func readUntil(t *testing.T, c *Capture, rec *event.Record, deadline time.Time) int {
	t.Helper()
	c.SetDeadline(deadline)
	n := 0
	for {
		err := c.ReadInto(rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// drain reads every pending record after Stop.
func drain(t *testing.T, c *Capture, rec *event.Record) int {
	t.Helper()
	return drainEach(t, c, rec, nil)
}

// drainEach flushes c and reads every record pending, calling each (if
// not nil) with each one; it returns how many it read.
func drainEach(t *testing.T, c *Capture, rec *event.Record, each func(*event.Record)) int {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		err := c.ReadInto(rec)
		if errors.Is(err, event.ErrFlushed) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if each != nil {
			each(rec)
		}
		n++
	}
}

func checkStats(t *testing.T, c *Capture) event.Stats {
	t.Helper()
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Fatalf("accounting: %v\n%+v", err, st)
	}
	return st
}

func TestCaptureTruth(t *testing.T) {
	needModule(t)
	c, st, read, el := readWhileWriting(t, Config{Truth: true}, workloads.Config{Name: "openclose", Threads: 1, Ops: 20000})
	tot := st.Total()
	if tot.Captured == 0 || int(tot.Captured) != read {
		t.Fatalf("captured %d, read %d", tot.Captured, read)
	}
	for _, k := range event.AllKinds {
		if st.Kind(k).Truth == 0 {
			t.Errorf("no %s hits counted", k)
		}
	}
	t.Logf("buffer %d B: captured %d lost %d truth %d in %v: %.0f events/s; max backlog %v",
		c.BufferBytes(), tot.Captured, tot.Lost, tot.Truth, el, float64(tot.Captured)/el.Seconds(), backlogs(st))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if Loaded() {
		t.Fatal("module still loaded after Close")
	}
}

// TestSubbufSwitchWhileRead: sub-buffers of two records each, read while
// written at a rate the reader keeps up with, so that it often waits on
// the sub-buffer the module is starting, each start held 50 µs just after
// its seq is published (start_delay_us). The module once published a
// sub-buffer's seq before its commit read 0, and a reader took the slot's
// previous commit and records for the new sub-buffer's ("corrupt relay
// buffer: commit 0", seen once in the VM matrix at 256-byte sub-buffers).
func TestSubbufSwitchWhileRead(t *testing.T) {
	needModule(t)
	for range 3 {
		c, st, read, _ := readWhileWriting(t, Config{Truth: true, SubbufSize: 256, NumSubbufs: 4, startDelay: 50},
			workloads.Config{Name: "openclose", Threads: 2, Ops: 6000, Rate: 1500})
		tot := st.Total()
		if int(tot.Captured) != read || tot.Disorder != 0 {
			t.Fatalf("captured %d, read %d, %d out of order", tot.Captured, read, tot.Disorder)
		}
		t.Logf("captured %d lost %d truth %d", tot.Captured, tot.Lost, tot.Truth)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// readWhileWriting reads a capture of cfg while wcfg runs, then stops it
// and drains it; the accounting must balance. It returns the capture
// (open), its statistics, the records read and the time taken.
func readWhileWriting(t *testing.T, cfg Config, wcfg workloads.Config) (*Capture, event.Stats, int, time.Duration) {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var rec event.Record
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	var werr error
	go func() { defer wg.Done(); _, werr = workloads.Run(context.Background(), wcfg) }()
	read := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read += readUntil(t, c, &rec, time.Now().Add(20*time.Millisecond))
	}
	if err := errors.Join(werr, c.Stop()); err != nil {
		t.Fatal(err)
	}
	read += drain(t, c, &rec)
	return c, checkStats(t, c), read, time.Since(start)
}

func backlogs(st event.Stats) []int {
	var b []int
	for _, c := range st.PerCPU {
		b = append(b, c.MaxBacklog)
	}
	return b
}

// stalled runs the workload without reading, then drains: the buffer
// overflows.
func stalled(t *testing.T, cfg Config) event.Stats {
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rec event.Record
	// read a little, then stall
	c.SetDeadline(time.Now().Add(10 * time.Millisecond))
	for c.ReadInto(&rec) == nil {
	}
	openClose(context.Background(), 5000)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	drain(t, c, &rec)
	st := checkStats(t, c)
	tot := st.Total()
	t.Logf("%+v: captured %d lost %d (%.1f%%) truth %d, seq gaps %d, max backlog %v", cfg, tot.Captured, tot.Lost,
		100*float64(tot.Lost)/float64(tot.Captured+tot.Lost), tot.Truth, tot.SeqGaps, backlogs(st))
	if tot.Lost == 0 || tot.Captured == 0 || tot.SeqGaps != tot.Lost {
		t.Fatalf("want loss and captures, gaps == lost: %+v", tot)
	}
	maxed := false
	for _, b := range backlogs(st) {
		maxed = maxed || b == cfg.NumSubbufs
	}
	if !maxed {
		t.Errorf("no CPU reached a backlog of %d sub-buffers: %v", cfg.NumSubbufs, backlogs(st))
	}
	return st
}

func TestCaptureDrops(t *testing.T) {
	needModule(t)
	for _, sz := range [][2]int{{4096, 2}, {16384, 8}} {
		st := stalled(t, Config{SubbufSize: sz[0], NumSubbufs: sz[1], Truth: true})
		// no-overwrite: every loss is a refused record
		for _, cs := range st.PerCPU {
			for _, k := range event.AllKinds {
				if c := cs.Kinds[k]; c.Captured > uint64((sz[0]-HeaderSize)/event.RecordSize*sz[1]) {
					t.Errorf("cpu %d %s: %d captured, more than the buffer holds", cs.CPU, k, c.Captured)
				}
			}
		}
	}
}

func TestCaptureOverwrite(t *testing.T) {
	needModule(t)
	stalled(t, Config{SubbufSize: 4096, NumSubbufs: 4, Overwrite: true, Truth: true})

	// A reader racing the overwrites: exact accounting still holds.
	c, err := Open(Config{SubbufSize: 1024, NumSubbufs: 2, Overwrite: true, Truth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go openClose(ctx, 0)
	var rec event.Record
	c.SetDeadline(time.Now().Add(2 * time.Second))
	for c.ReadInto(&rec) == nil {
	}
	cancel()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	drain(t, c, &rec)
	st := checkStats(t, c)
	tot := st.Total()
	t.Logf("racing reader, overwrite 2x1024: captured %d lost %d truth %d", tot.Captured, tot.Lost, tot.Truth)
	if tot.Captured == 0 {
		t.Fatal("nothing captured")
	}
}

func TestBadParams(t *testing.T) {
	needModule(t)
	path, _ := FindModule("")
	for _, p := range []struct{ params, msg string }{
		{"subbuf_size=0", "subbuf_size=0"},
		{"subbuf_size=100", "subbuf_size=100"},
		{"subbuf_size=4100", "subbuf_size=4100"},
		{"subbuf_size=1073741824", "subbuf_size=1073741824"},
		{"n_subbufs=0", "n_subbufs=0"},
		{"n_subbufs=1", "n_subbufs=1"},
		{"n_subbufs=100000", "n_subbufs=100000"},
		{"subbuf_size=1048576 n_subbufs=128", "per CPU"},
		{"events=0", "events=0"},
		{"events=32", "events=0x20"},
		{"events=1", "events=0x1"},
		{"events=2 truth_ids=0,5", "truth_ids[1]=5"},
		{"stack_depth=128", "stack_depth=128"},
		{"stack_depth=8 stack_entries=0", "stack_entries=0"},
		{"stack_depth=8 stack_entries=1048577", "stack_entries=1048577"},
		{"part=3", "part=3"},
		{"start_delay_us=101", "start_delay_us=101"},
		{"part=1 empty=1", "empty=1"},
	} {
		err := loadModule(path, p.params)
		if err == nil {
			unloadModule()
			t.Errorf("%s: loaded", p.params)
			continue
		}
		if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), p.msg) {
			t.Errorf("%s: %v; want EINVAL naming %q", p.params, err, p.msg)
		}
		if Loaded() {
			t.Fatalf("%s: module loaded after EINVAL", p.params)
		}
	}
	// A bogus tracepoint id: the truth counter cannot be created.
	if err := loadModule(path, "truth_ids=999999"); err == nil {
		unloadModule()
		t.Error("truth_ids=999999: loaded")
	} else {
		t.Log(err)
	}
}

func TestAlreadyLoaded(t *testing.T) {
	needModule(t)
	c, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Open(Config{}); err == nil || !strings.Contains(err.Error(), "rmmod slabrelay") {
		t.Fatalf("second Open: %v", err)
	}
}

func TestCycles(t *testing.T) {
	needModule(t)
	n := 50
	if testing.Short() {
		n = 5
	}
	// A counting event on each kmem tracepoint for all the cycles keeps
	// the tracepoints' static keys on, so loading and unloading the
	// module does not patch kernel text: under multi-threaded TCG a vCPU
	// now and then meets text_poke's int3 after the patch is done, and
	// the guest panics (docs/vm.md). The cycles are for the module's
	// setup and teardown, not the kernel's static keys.
	keysOn, err := truth.Open(event.AllKinds)
	if err != nil {
		t.Fatal(err)
	}
	defer keysOn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go openClose(ctx, 0)
	var rec event.Record
	windows, late := 0, 0
	for i := 0; i < n; i++ {
		// Every cycle checks captured + lost == truth, gaps == drops.
		c, err := Open(Config{SubbufSize: 8192, NumSubbufs: 4, Truth: true, Overwrite: i%2 == 1})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Millisecond))
		for c.ReadInto(&rec) == nil {
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		drain(t, c, &rec)
		st := checkStats(t, c)
		if st.Total().Captured == 0 {
			t.Fatalf("cycle %d: nothing captured", i)
		}
		// A window a stamp in the emitting probe alone would have
		// started late: a same-kind hit nested in its first hit.
		for _, cs := range moduleKindStats(t).cpus {
			for _, k := range event.AllKinds {
				if km := cs.kinds[k]; km.attempts > 0 {
					windows++
					if km.firstEmit != km.truthFirst {
						late++
						t.Logf("cycle %d cpu %d %s: nested first hit (first_emit %d, window start %d), window exact",
							i, cs.cpu, k, km.firstEmit, km.truthFirst)
					}
				}
			}
		}
		if err := c.Close(); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	t.Logf("%d of %d CPU x kind windows had a same-kind hit nested in their first hit", late, windows)
}

// TestUnloadWithOpenFiles maps a buffer, unloads the module under it and
// reads the mapping afterwards: relay keeps the buffer alive.
func TestUnloadWithOpenFiles(t *testing.T) {
	needModule(t)
	c, err := Open(Config{SubbufSize: 4096, NumSubbufs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := os.Open(debugfsDir + "/cpu0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if Loaded() {
		t.Fatal("still loaded")
	}
	h, _ := DecodeHeader(mem)
	if h.Magic != SubbufMagic {
		t.Fatalf("mapping after unload: %+v", h)
	}
}

// TestCloseFromTheReader: a reader that returned a record and has not
// read since holds its lease on the mappings; Close from that goroutine
// must still unload the module, and the next read must say closed.
func TestCloseFromTheReader(t *testing.T) {
	needModule(t)
	c, err := Open(Config{SubbufSize: 4096, NumSubbufs: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	openClose(context.Background(), 200)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var rec event.Record
	for range 2 { // the second comes from the fast path, mid-sub-buffer
		if err := c.ReadInto(&rec); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal("Close: ", err)
	}
	if Loaded() {
		t.Fatal("Close from the reading goroutine left the module loaded")
	}
	t.Logf("Close took %v", time.Since(start))
	if err := c.ReadInto(&rec); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadInto after Close: %v, want an error wrapping os.ErrClosed", err)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal("Stats after Close: ", err)
	}
	if got := st.Total().Captured; got != 2 {
		t.Fatalf("Stats after Close: %d captured, the reader returned 2", got)
	}
}

// TestProbeTime: with probe_time the module sums the time inside its
// probes; every handled hit ran the emitting probe once.
func TestProbeTime(t *testing.T) {
	needModule(t)
	c := stoppedCapture(t, Config{Truth: true, ProbeTime: true, SubbufSize: 64 << 10, NumSubbufs: 16}, 2000)
	runs, total, err := c.ProbeTime()
	if err != nil {
		t.Fatal(err)
	}
	var rec event.Record
	drain(t, c, &rec)
	st := checkStats(t, c)
	attempts := st.Total().Attempts
	t.Logf("%d probe runs, %v in all (%.0f ns per run), %d handled hits", runs, total, float64(total)/float64(runs), attempts)
	if runs < attempts || attempts < 4000 || total <= 0 {
		t.Fatalf("%d runs taking %v for %d handled hits; want runs >= hits >= 4000 and time > 0", runs, total, attempts)
	}
}

// TestProbeParts: below the capture (module parameter part) the probe
// writes a record on every run and counts nothing: the floor's records
// hold only their CPU and kind, the fill's their fields too.
func TestProbeParts(t *testing.T) {
	needModule(t)
	for _, part := range []Part{PartFloor, PartFill} {
		c := stoppedCapture(t, Config{Part: part, ProbeTime: true, SubbufSize: 256 << 10, NumSubbufs: 16}, 2000)
		runs, _, err := c.ProbeTime()
		if err != nil {
			t.Fatal(err)
		}
		var rec event.Record
		var filled uint64
		read := uint64(drainEach(t, c, &rec, func(r *event.Record) {
			if r.TsNs != 0 {
				filled++
			}
		}))
		want := uint64(0)
		if part == PartFill {
			want = read
		}
		t.Logf("part %d: %d runs, %d records read, %d filled", part, runs, read, filled)
		if read != runs || runs < 4000 || filled != want {
			t.Errorf("part %d: %d records read (%d filled) of %d probe runs; want one per run (at least 4000), filled %d", part, read, filled, runs, want)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
