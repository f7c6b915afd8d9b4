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
// or counted by why not, on both eBPF transports; a stack map too small on
// purpose turns most of them into counted causes, never into nothing.
func TestCaptureTakesStacks(t *testing.T) {
	oneLineError(t, exec.Command(binary, "capture", "--stacks", "--path", "relay"), "--stacks", "ringbuf or perfbuf")
	oneLineError(t, exec.Command(binary, "capture", "--stacks", "--stack-depth", "200"), "--stack-depth 200", "1..127")
	testenv.RequireRoot(t)
	for _, path := range []string{"ringbuf", "perfbuf"} {
		r := stackCapture(t, "--path", path)
		st := r.Stacks
		if st.Taken == 0 || st.Taken+st.MapFull+st.Collisions+st.Failed != allocAttempts(r) {
			t.Errorf("%s: stacks %+v for %d allocations: want most taken, and every one taken or counted", path, *st, allocAttempts(r))
		}
	}
	// Three entries: four hash buckets, three stacks; the rest collide or
	// find no room.
	r := stackCapture(t, "--stack-entries", "3")
	st := r.Stacks
	if st.Entries != 3 || st.Taken == 0 || st.MapFull+st.Collisions == 0 || st.Taken+st.MapFull+st.Collisions+st.Failed != allocAttempts(r) {
		t.Errorf("--stack-entries 3: stacks %+v for %d allocations: want a few taken, the rest counted map full or collisions", *st, allocAttempts(r))
	}
}

// TestTopStacks: top --stacks -- CMD shows the files a grandchild opens
// under a stack through the open path, with the exact count.
func TestTopStacks(t *testing.T) {
	testenv.RequireRoot(t)
	const step = 120
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "top", "--stacks", "--json", "--interval", "500ms", "--top", "0", "--duration", "60s",
		"--", "sh", "-c", `"$0"; true`, self)
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
	t.Logf("a step of %d outstanding under: %s", step, row)
}
