// Package perfrecord runs the reference row path=perf-record of the
// slabbench benchmarks: the perf tool recording the kmem tracepoints
// system-wide with the same per-CPU buffer memory as the other paths, the
// tool a user would reach for instead of a purpose-built transport.
//
// Start runs
//
//	perf record -a -q --no-buildid --no-buildid-cache -D -1 --control fd:3,4 \
//	    -e kmem:kmalloc,... -m PAGES -o FILE
//
// Events start disabled (-D -1); Start sends "enable" on the control fd and
// returns only after perf acknowledges it, when the kernel events are
// enabled, so the workload run after Start is covered. Stop sends "disable"
// and waits for the acknowledgement, so perf's own tear-down is not
// recorded, then sends SIGINT, waits for perf to drain its buffers and
// write the file, and counts the file's records itself (one sequential pass
// over perf.data, much cheaper than perf report or perf script): samples
// per kind, and the samples the kernel could not write because perf's ring
// buffer was full. perf (>= 6.0, on a kernel >= 6.0) stores that loss per
// event as PERF_RECORD_LOST_SAMPLES, read from each event's
// PERF_FORMAT_LOST counter, so Result.LostByKind is per kind; where it is
// absent, only the total of the ring buffers' PERF_RECORD_LOST is known.
//
// # What truth can show
//
// perf record has no in-band truth window, so a run is checked against two
// brackets of truth counters (package truth) read from user space:
//
//   - outer: read before Start and after Stop. perf's events are enabled
//     only inside it, and every hit of a tracepoint while they are enabled
//     is either written to perf's ring buffer (captured) or counted lost
//     by the kernel, so captured+lost <= outer. It is not equal: outer
//     also holds the slab events of perf's own start-up (exec, opening
//     4×CPUs events, mapping buffers, synthesizing /proc) and tear-down
//     (writing perf.data, exit), outside perf's window.
//   - inner: read after Start returned and before Stop is called. Start
//     returns only after perf acknowledged "enable" (the enable ioctls are
//     done by then) and Stop disables first, so inner lies inside perf's
//     window and inner <= captured+lost.
//
// Check enforces the outer bound, CheckWithin both. Exactness cannot be
// shown: the brackets are as tight as user-space reads around perf's
// enable and disable acknowledgements (how wide they were is in
// results/README.md). Result.StartupCPUTime separates perf's start-up
// (synthesizing every task of /proc), which dominates its CPU time.
package perfrecord
