package main

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/slabbench/slabbench/internal/testenv"
)

// TestCaptureRunsACommand: capture -- CMD runs the program as the
// workload, for the window's length, and reports its exit status.
func TestCaptureRunsACommand(t *testing.T) {
	oneLineError(t, exec.Command(binary, "capture", "true"), `"true"`, "-- CMD ARGS")
	oneLineError(t, exec.Command(binary, "capture", "--workload", "openclose", "--", "true"), "--workload openclose", "-- CMD")
	testenv.RequireRoot(t)
	run := func(args ...string) (res struct {
		Workload, Command string
		CommandExit       int   `json:"command_exit"`
		DurationNs        int64 `json:"duration_ns"`
		Captured          uint64
		Verified          bool
	}) {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"capture", "--path", "ringbuf", "--json"}, args...)...).Output()
		if err != nil {
			t.Fatalf("capture %v: %v\n%s", args, err, out)
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return res
	}
	// Starting ten processes allocates and frees plenty.
	r := run("--", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do cat /dev/null; done; sleep 0.5")
	if r.Workload != "command" || r.Command == "" || r.CommandExit != 0 || !r.Verified || r.Captured < 100 ||
		time.Duration(r.DurationNs) < 500*time.Millisecond {
		t.Errorf("capture -- sh -c ...: %+v; want the command's window, at least its 0.5 s, its exit status 0 and its events", r)
	}
	if r := run("--", "sh", "-c", "exit 3"); r.CommandExit != 3 || !r.Verified {
		t.Errorf("capture -- sh -c 'exit 3': %+v; want exit status 3 reported, the capture still checked", r)
	}
	if r := run("--duration", "1s", "--", "sleep", "30"); r.CommandExit != -1 || time.Duration(r.DurationNs) > 5*time.Second {
		t.Errorf("capture --duration 1s -- sleep 30: %+v; want the program stopped when the window ends (-1)", r)
	}
}
