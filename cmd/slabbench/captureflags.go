package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/workloads"
)

// captureFlags are the flags capture and top share: the path, its buffer,
// its consumer and the workload that drives it.
type captureFlags struct {
	path, attach, workload *string
	ops                    *int64
	threads                *int
	rate                   *float64
	hold, stall, poll      *time.Duration
	subbuf, wakeup, ring   bytesize.Flag
	subbufs, consumerCPU   *int
	stacks                 *bool
	stackDepth, stackMax   *int
}

func addCaptureFlags(fs *flag.FlagSet, defaultWorkload string) *captureFlags {
	f := &captureFlags{subbuf: bytesize.Flag{Bytes: 16 << 10}}
	f.path = fs.String("path", "ringbuf", "transport: ringbuf, perfbuf or relay")
	f.attach = fs.String("attach", "tracepoint", "eBPF attach mode: tracepoint, rawtp, kprobe or fentry")
	f.workload = fs.String("workload", defaultWorkload, "workload: "+strings.Join(workloads.Names(), ", ")+", or none")
	f.ops = fs.Int64("ops", 0, "workload ops in total (0: run for --duration)")
	f.threads = fs.Int("threads", 1, "workload threads, pinned to CPUs")
	f.rate = fs.Float64("rate", 0, "open-loop target ops/s over all threads (0: as fast as possible)")
	f.hold = fs.Duration("hold", 0, "fdhold: keep the fds open this long after the last op (top: until its window ends, unless given)")
	fs.Var(&f.subbuf, "subbuf-size", "sub-buffer size (4096, 16KiB, 1MiB)")
	f.subbufs = fs.Int("subbufs", 8, "sub-buffers per CPU")
	fs.Var(&f.ring, "ringbuf-size", "ring buffer size (default subbuf-size x subbufs x CPUs, rounded to a power of two)")
	fs.Var(&f.wakeup, "wakeup-bytes", "wake the reader only once this many bytes are pending (0: every record)")
	f.poll = fs.Duration("poll", 0, fmt.Sprintf("ringbuf, perfbuf: the reader looks this often and is never woken (%v..%v; costs up to this much lag; 0: woken)", bpftrace.MinPollInterval, bpftrace.MaxPollInterval))
	f.stall = fs.Duration("consumer-stall", 0, "start draining this late, to provoke loss")
	f.consumerCPU = fs.Int("consumer-cpu", -1, "pin the consumer to this CPU and the workload to the others (-1: not pinned)")
	f.stacks = fs.Bool("stacks", false, "take each allocation's kernel stack")
	f.stackDepth = fs.Int("stack-depth", bpftrace.DefaultStackDepth, fmt.Sprintf("--stacks: frames per stack, 1..%d", bpftrace.MaxStackDepth))
	f.stackMax = fs.Int("stack-entries", bpftrace.DefaultStackEntries, fmt.Sprintf("--stacks: distinct stacks the stack map holds, 1..%d; allocations past it are counted without a stack", bpftrace.MaxStackEntries))
	return f
}

// config is the capture these flags describe, with the workload bounded
// by duration.
func (f *captureFlags) config(kinds []event.Kind, truth bool, duration time.Duration) (capture.Config, error) {
	if *f.threads < 1 || *f.threads > workloads.MaxThreads {
		return capture.Config{}, fmt.Errorf("--threads %d: want 1..%d", *f.threads, workloads.MaxThreads)
	}
	a := bpftrace.Attach(*f.attach)
	if *f.stackDepth < 1 || *f.stackDepth > bpftrace.MaxStackDepth {
		return capture.Config{}, fmt.Errorf("--stack-depth %d: want 1..%d frames", *f.stackDepth, bpftrace.MaxStackDepth)
	}
	if *f.stackMax < 1 || *f.stackMax > bpftrace.MaxStackEntries {
		return capture.Config{}, fmt.Errorf("--stack-entries %d: want 1..%d distinct stacks", *f.stackMax, bpftrace.MaxStackEntries)
	}
	var stackDepth, stackEntries int
	if *f.stacks {
		stackDepth, stackEntries = *f.stackDepth, *f.stackMax
	}
	return capture.Config{
		Path:   capture.Path(*f.path),
		Attach: a,
		Kinds:  kinds,
		Truth:  truth,
		Workload: workloads.Config{Name: *f.workload, Ops: *f.ops, Threads: *f.threads,
			Duration: duration, Rate: *f.rate, Hold: *f.hold},
		SubbufSize:    f.subbuf.Bytes,
		NumSubbufs:    *f.subbufs,
		RingbufSize:   f.ring.Bytes,
		WakeupBytes:   f.wakeup.Bytes,
		PollInterval:  *f.poll,
		ConsumerStall: *f.stall,
		PinConsumer:   *f.consumerCPU != -1,
		ConsumerCPU:   *f.consumerCPU,
		StackDepth:    stackDepth,
		StackEntries:  stackEntries,
	}, nil
}
