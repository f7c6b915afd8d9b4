package relaytrace

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/event"
)

// TestFunctionProbesUnderNesting makes every __kmalloc and
// kmem_cache_alloc call have a same-kind call nested inside it (module
// parameter nest_calls: the module's probe on their tracepoints allocates
// once more), so that an fentry capture's window opens, on nearly every
// CPU, with a nested call returning before the call it is nested in.
// Stamped at exit, such a window left the outer call's count out while
// counting its record (attempts one above truth, now and then in CI);
// stamped at entry, it must balance. Run it under SLABBENCH_VM_ACCEL=tcg-single,
// where attaching fentry programs cannot oops the 6.1 guest.
func TestFunctionProbesUnderNesting(t *testing.T) {
	needModule(t)
	nest, err := Open(Config{Kinds: []event.Kind{event.KindKmalloc}, nestCalls: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nest.Close()

	kinds := []event.Kind{event.KindKmalloc, event.KindKmemCacheAlloc}
	c, err := bpftrace.Open(bpftrace.Config{Transport: bpftrace.Ringbuf, Attach: bpftrace.AttachFentry,
		Kinds: kinds, Truth: true, RingbufSize: 16 << 20})
	if err != nil {
		t.Skip("fentry unavailable: ", err)
	}
	defer c.Close()
	openClose(context.Background(), 2000)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each CPU and kind's stamps in the order the records were written.
	stamps := map[[2]int][]uint64{}
	var rec event.Record
	for {
		err := c.ReadInto(&rec)
		if errors.Is(err, event.ErrFlushed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		key := [2]int{int(rec.CPU), int(rec.Kind)}
		stamps[key] = append(stamps[key], rec.Truth)
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Verify(); err != nil {
		t.Errorf("accounting under nesting: %v", err)
	}
	nestedFirst := 0
	for key, s := range stamps {
		outOfOrder := 0
		for i := 1; i < len(s); i++ {
			if s[i] < s[i-1] {
				outOfOrder++
			}
		}
		if len(s) >= 2 && s[0] > s[1] {
			nestedFirst++
		}
		t.Logf("cpu %d %s: %d records, %d returned before a call they were nested in", key[0], event.Kind(key[1]), len(s), outOfOrder)
	}
	for _, k := range kinds {
		kc := st.Kind(k)
		t.Logf("%s: captured %d + lost %d (missed %d) == truth %d; attempts %d; the kernel skipped its programs %d times; uncounted %d, repeats %d", k, kc.Captured, kc.Lost, kc.Missed, kc.Truth, kc.Attempts, st.ProbeMisses[k], kc.Uncounted, kc.StampRepeats)
	}
	// The case the exit stamp got wrong must have been provoked.
	if nestedFirst == 0 {
		t.Errorf("no CPU's window opened with a nested call (stamps %v): nest_calls did not nest", firstStamps(stamps))
	}
}

// firstStamps returns the first few stamps of each CPU and kind.
func firstStamps(stamps map[[2]int][]uint64) map[[2]int][]uint64 {
	m := map[[2]int][]uint64{}
	for k, s := range stamps {
		m[k] = slices.Clone(s[:min(len(s), 4)])
	}
	return m
}
