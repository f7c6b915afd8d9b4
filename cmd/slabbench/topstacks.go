package main

import (
	"fmt"
	"strings"
	"sync"

	"github.com/slabbench/slabbench/kleak"
)

// stackNames names the frames of the capture's stacks (top --stacks), as
// function+0xoff [module], once per stack id. The stack map goes with
// the capture, so the ids the table holds are named before it closes
// (prefetch).
type stackNames struct {
	mu     sync.Mutex
	frames func(id uint32) ([]uint64, error)
	syms   *kleak.Symbols
	named  map[uint32][]string
}

func newStackNames(frames func(uint32) ([]uint64, error), syms *kleak.Symbols) *stackNames {
	return &stackNames{frames: frames, syms: syms, named: map[uint32][]string{}}
}

// get returns stack id's named frames, innermost first; a stack the map
// no longer holds is one line saying so.
func (n *stackNames) get(id uint32) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if names, ok := n.named[id]; ok {
		return names
	}
	ips, err := n.frames(id)
	if err != nil {
		return []string{fmt.Sprintf("(stack %d unreadable: %v)", id, err)}
	}
	names := make([]string, len(ips))
	for i, ip := range ips {
		names[i] = n.syms.Resolve(ip)
	}
	names = names[probeFrames(names):]
	n.named[id] = names
	return names
}

// probeFrames returns how many of a stack's first frames ran the probe,
// not the code it probes: a stack taken from a raw tracepoint, kprobe or
// fentry program begins inside the machinery that ran it (the program's
// own frame may even be named after an older symbol: kallsyms was read
// before it was loaded), and the allocator's frames follow the last of
// them.
func probeFrames(names []string) int {
	if len(names) == 0 {
		return 0 // an empty stack: nothing to cut
	}
	cut := 0
	for i, name := range names[:min(len(names)-1, maxProbeFrames)] {
		if probeFrame(name) {
			cut = i + 1
		}
	}
	return cut
}

// maxProbeFrames bounds how deep probeFrames looks for the probe's frames.
const maxProbeFrames = 8

// probeFramePrefixes begin the names of the kernel's functions that run a
// probe (BPF dispatch, tracepoint iterators, trampolines, kprobe handlers).
var probeFramePrefixes = []string{"bpf_prog_", "bpf_trampoline_", "bpf_trace_run", "__bpf_trace_",
	"__traceiter_", "trace_call_bpf", "perf_trace_", "kprobe_", "opt_pre_handler", "optimized_callback"}

// probeFrame says whether a named frame runs the probe, not the kernel
// code it probes: a BPF program's own frame ([bpf]) or one of
// probeFramePrefixes.
func probeFrame(name string) bool {
	if strings.HasSuffix(name, " [bpf]") {
		return true
	}
	for _, p := range probeFramePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// prefetch names every stack of ids while the capture is still open.
func (n *stackNames) prefetch(ids []uint32) {
	for _, id := range ids {
		n.get(id)
	}
}
