package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
)

// stackCapture runs capture --stacks --json with args and returns its
// result.
func stackCapture(t *testing.T, args ...string) capture.Result {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"capture", "--stacks", "--json", "--workload", "openclose", "--ops", "3000"}, args...)...).Output()
	if err != nil {
		t.Fatalf("capture --stacks %v: %v\n%s", args, err, out)
	}
	var r capture.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.Verified || r.Stacks == nil {
		t.Fatalf("capture --stacks %v: verified %v (%s), stacks %+v: want every allocation's stack accounted", args, r.Verified, r.VerifyError, r.Stacks)
	}
	return r
}

// allocAttempts is the allocations the probes handled.
func allocAttempts(r capture.Result) uint64 {
	return r.Kinds["kmalloc"].Attempts + r.Kinds["kmem_cache_alloc"].Attempts
}

// TestCaptureTakesStacks: with --stacks every allocation's stack is taken
// or counted by why not, on every transport (relay in the VM); a stack
// table too small on purpose turns most of them into counted causes,
// never into nothing.
func TestCaptureTakesStacks(t *testing.T) {
	oneLineError(t, exec.Command(binary, "capture", "--stacks", "--stack-depth", "200"), "--stack-depth 200", "1..127")
	testenv.RequireRoot(t)
	for _, path := range []string{"ringbuf", "perfbuf", "relay"} {
		t.Run(path, func(t *testing.T) {
			if path == "relay" {
				if err := relaytrace.Available(""); err != nil {
					t.Skipf("relay: %v (make test runs it in the VM)", err)
				}
			}
			r := stackCapture(t, "--path", path)
			st := r.Stacks
			if st.Taken == 0 || st.Taken+st.MapFull+st.Collisions+st.Failed != allocAttempts(r) {
				t.Errorf("stacks %+v for %d allocations: want most taken, and every one taken or counted", *st, allocAttempts(r))
			}
			// Three entries: four hash buckets, three stacks; the rest
			// collide or find no room.
			r = stackCapture(t, "--path", path, "--stack-entries", "3")
			st = r.Stacks
			if st.Entries != 3 || st.Taken == 0 || st.MapFull+st.Collisions == 0 || st.Taken+st.MapFull+st.Collisions+st.Failed != allocAttempts(r) {
				t.Errorf("--stack-entries 3: stacks %+v for %d allocations: want a few taken, the rest counted map full or collisions", *st, allocAttempts(r))
			}
		})
	}
}

// TestTopStacks: top --stacks -- CMD shows the files a grandchild opens
// under a stack through the open path, with the exact count, on both eBPF
// transports (relay in the VM); a stack is shown from the allocator down,
// without the frames that ran the probe.
func TestTopStacks(t *testing.T) {
	testenv.RequireRoot(t)
	const step = 120
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, attach string }{{"ringbuf", "tracepoint"}, {"perfbuf", "rawtp"}, {"relay", "tracepoint"}} {
		t.Run(tc.path+"/"+tc.attach, func(t *testing.T) {
			if tc.path == "relay" {
				if err := relaytrace.Available(""); err != nil {
					t.Skipf("relay: %v (make test runs it in the VM)", err)
				}
			}
			cmd := exec.Command(binary, "top", "--stacks", "--json", "--path", tc.path, "--attach", tc.attach,
				"--interval", "500ms", "--top", "0", "--duration", "60s", "--", "sh", "-c", `"$0"; true`, self)
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d 2s", holdFilesEnv, step))
			frames := topFrames(t, cmd)
			var stacked []topJSON
			for _, f := range frames[:len(frames)-1] {
				stacked = append(stacked, topJSON{Sites: f.Stacks})
			}
			row := steppedBy(stacked, step)
			if row == "" {
				t.Fatalf("no stack's outstanding count rose by exactly %d between two intervals", step)
			}
			if !strings.Contains(row, "do_sys_open") {
				t.Errorf("the held files' stack does not go through do_sys_open*: %s", row)
			}
			if _, stack, _ := strings.Cut(row, " <- "); probeFrames(strings.Split(stack, " <- ")) > 0 {
				t.Errorf("the stack begins inside the probe's machinery: %s", row)
			}
			t.Logf("a step of %d outstanding under: %s", step, row)
		})
	}
}
