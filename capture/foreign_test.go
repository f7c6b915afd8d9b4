package capture

import (
	"regexp"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
)

// attachReturnZero attaches, as another tool would, a tracepoint program
// that returns 0 to kmem:<kind> (bcc's memleak does so): the kernel then
// skips the perf events of every hit, the truth counter among them. It
// returns the program's id.
func attachReturnZero(t *testing.T, k event.Kind) uint32 {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "other_tool", Type: ebpf.TracePoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	l, err := link.Tracepoint("kmem", k.String(), prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

// TestForeignProgramIsNamed: with another tool's program returning 0 on
// kmem:kfree, the probe handles hits the truth counter never counts
// (attempts above truth, the symptom of the holes in docs/limits.md).
// The capture must name the program, count the hits it hid (on the eBPF
// paths each backed by a repeated stamp), and call the loss a lower
// bound; the same counts without the program named must fail the check.
func TestForeignProgramIsNamed(t *testing.T) {
	testenv.RequireRoot(t)
	id := attachReturnZero(t, event.KindKfree)
	cases := []struct {
		path   Path
		attach bpftrace.Attach
	}{{PathRingbuf, bpftrace.AttachTracepoint}, {PathRingbuf, bpftrace.AttachRawTP}, {PathRelay, ""}}
	for _, tc := range cases {
		t.Run(string(tc.path)+"/"+string(tc.attach), func(t *testing.T) {
			if tc.path == PathRelay {
				if err := relaytrace.Available(""); err != nil {
					t.Skipf("relay: %v (make test runs it in the VM)", err)
				}
			}
			res := mustRun(t, baseConfig(tc.path, tc.attach, "openclose"))
			kf := res.Kinds[event.KindKfree.String()]
			if !slices.Contains(res.ForeignPrograms, ForeignProgram{Kind: "kfree", ID: id, Name: "other_tool"}) {
				t.Errorf("foreign programs %+v, want id %d other_tool on kfree", res.ForeignPrograms, id)
			}
			if kf.ForeignHidden == 0 || kf.ForeignHidden+10 < kf.Attempts {
				t.Errorf("kfree: %d hits counted as hidden of %d attempts: the program hides nearly all", kf.ForeignHidden, kf.Attempts)
			}
			if !res.LossLowerBound {
				t.Error("loss not called a lower bound with another program on the tracepoint")
			}
			if km := res.Kinds[event.KindKmalloc.String()]; km.ForeignHidden != 0 {
				t.Errorf("kmalloc: %d hits counted as hidden with no other program on it", km.ForeignHidden)
			}
			st := res.Stats
			st.ForeignPrograms = [event.NumKinds][]uint32{}
			err := st.Verify()
			if err == nil {
				t.Fatal("the same counts without the program named passed the check: the truth check does not see hidden hits")
			}
			t.Logf("without the program named: %v", err)
		})
	}
}

// TestMismatchNamesThreads: hits hidden from the truth counter by a
// program nobody named leave repeated stamps, and the mismatch names the
// threads whose records repeated one (whoever freed on the CPUs: the
// workload, kworkers) and the functions they freed from. kmem_cache_free,
// which openclose hits thousands of times, so that the records read hold
// repeats whatever the buffer drops (kfree's handful may not).
func TestMismatchNamesThreads(t *testing.T) {
	testenv.RequireRoot(t)
	attachReturnZero(t, event.KindKmemCacheFree)
	named := regexp.MustCompile(`repeated the stamp before, .* by pid \d+ \([^)]+\) ×\d+.* from [a-z_.0-9]+\+0x`)
	for _, attach := range []bpftrace.Attach{bpftrace.AttachTracepoint, bpftrace.AttachRawTP} {
		t.Run(string(attach), func(t *testing.T) {
			st := mustRun(t, baseConfig(PathRingbuf, attach, "openclose")).Stats
			st.ForeignPrograms = [event.NumKinds][]uint32{}
			nameRepeats(&st)
			if err := st.Verify(); err == nil || !named.MatchString(err.Error()) {
				t.Errorf("mismatch %v: want the repeated stamps' threads and call sites named", err)
			}
		})
	}
}
