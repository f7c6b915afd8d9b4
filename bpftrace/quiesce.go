package bpftrace

import (
	"time"

	"golang.org/x/sys/unix"
)

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL (linux/membarrier.h),
// which the kernel serves with synchronize_rcu().
const membarrierCmdGlobal = 1

// waitForRunningPrograms returns once every program run that began
// before the call has ended (a run on another CPU may still be between
// reserving a record and submitting it, or about to stamp its counters):
// the final drain and counter read must come after them, or a record is
// in neither the captured nor the dropped count. Every tracepoint probe
// and BPF program run is an RCU read-side section, so one grace period
// covers them.
func waitForRunningPrograms() {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		// nohz_full kernels refuse it: a grace period is milliseconds,
		// so wait well past one.
		time.Sleep(100 * time.Millisecond)
	}
}
