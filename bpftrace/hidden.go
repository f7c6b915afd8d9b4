package bpftrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// tracepointMissesSince is the first Linux release whose trace_call_bpf
// counts the runs of a tracepoint program it skips for recursion in the
// program's statistics ("bpf: Count missed stats in trace_call_bpf").
var tracepointMissesSince = [2]int{6, 7}

// countsTracepointMisses says whether the running kernel keeps a count
// of the hits it skips a tracepoint program for.
func countsTracepointMisses() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	major, minor, ok := releaseVersion(unix.ByteSliceToString(u.Release[:]))
	return ok && (major > tracepointMissesSince[0] || major == tracepointMissesSince[0] && minor >= tracepointMissesSince[1])
}

// releaseVersion parses the major and minor version of a kernel release
// such as "6.18.44-fc-v1272" or "6.1.0-56-amd64".
func releaseVersion(release string) (major, minor int, ok bool) {
	n, err := fmt.Sscanf(release, "%d.%d", &major, &minor)
	return major, minor, err == nil && n == 2
}
